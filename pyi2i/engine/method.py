"""What pix2pix and CycleGAN share: networks, optimizers, losses, precision, state."""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from pyi2i import ops
from pyi2i.config import LossConfig, ModelConfig, OptimConfig, SpeedConfig
from pyi2i.engine import distributed
from pyi2i.models import define_D, define_G


class Method:
    """Base of the training methods: subclasses build `nets` and `optimizers`, call `finish_setup`,
    and implement `step`, which calls the networks through `run` (the same modules, or compiled /
    distributed wrappers of them; `nets` always holds the plain modules whose state is saved).

    `step(batch)` runs one training iteration in the order of the original release and returns
    the losses as detached device tensors (reading them is the caller's choice: it syncs).
    """

    loss_names: tuple[str, ...] = ()
    visual_names: tuple[str, ...] = ()
    translator_name: str = ""  # the A -> B generator, used for inference and held-out metrics
    # Defaults of the options left unset that depend on the method (TrainConfig.resolve applies them).
    defaults: dict = {}
    # The built-in demo data the method trains on without --dataroot, as (kind, image size), and the
    # defaults that keep such a run to minutes on a CPU; None: the method needs --dataroot.
    demo: tuple[str, int] | None = None
    demo_defaults: dict = {}
    # A method's own options, if it has any: a frozen dataclass of pyi2i.config.option fields, based
    # on pyi2i.config.Section. They become command-line options and the [method] table of
    # config.toml, and reach the method as `self.options`.
    Options: type | None = None
    # The generators `python -m pyi2i.test` loads for this method, by network name.
    generators: tuple[str, ...] = ()

    @staticmethod
    def test_visuals(G: dict[str, nn.Module], sample: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The images `python -m pyi2i.test` writes for one sample, by the original release's
        names, from the loaded generators `G`."""
        raise NotImplementedError

    def __init__(self, model: ModelConfig, loss: LossConfig, optim: OptimConfig, speed: SpeedConfig,
                 device: torch.device, options=None):
        self.model, self.loss, self.optim, self.speed, self.options = model, loss, optim, speed, options
        self.device = device
        self.nets = nn.ModuleDict()
        self.run: dict[str, nn.Module] = {}
        self.memory_format = torch.channels_last if speed.channels_last else torch.contiguous_format
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.visuals: dict[str, torch.Tensor] = {}
        # The same autocast on every device: the CPU runs the GPU's mixed-dtype path through every backend.
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(speed.amp)
        # fp16 has too little range for GAN gradients without loss scaling; bf16 needs none.
        self.scaler = torch.amp.GradScaler(device.type) if speed.amp == "fp16" else None

    # -- building -------------------------------------------------------------------------------
    def make_G(self, input_nc: int, output_nc: int) -> nn.Module:
        m = self.model
        return define_G(m.netG, input_nc, output_nc, m.ngf, m.norm, not m.no_dropout, m.init_type, m.init_gain,
                        impl=self.speed.impl).to(self.device)

    def make_D(self, input_nc: int) -> nn.Module:
        m = self.model
        return define_D(m.netD, input_nc, m.ndf, m.n_layers_D, m.norm, m.init_type, m.init_gain,
                        impl=self.speed.impl).to(self.device)

    def make_adam(self, *nets: nn.Module) -> torch.optim.Optimizer:
        params = [p for net in nets for p in net.parameters()]
        if self.device.type != "cuda":  # the reference configuration
            return torch.optim.Adam(params, lr=self.optim.lr, betas=(self.optim.beta1, 0.999))
        # One fused kernel per step instead of one per tensor (pix2pix's step is bound by the update
        # of 57 M parameters). Captured in a CUDA graph, the step counter and the learning rate must
        # live on the device, so the schedule can change the rate without recapturing.
        graphs = self.speed.cuda_graphs
        lr = torch.tensor(self.optim.lr, device=self.device) if graphs else self.optim.lr
        return torch.optim.Adam(params, lr=lr, betas=(self.optim.beta1, 0.999), fused=True, capturable=graphs)

    def finish_setup(self) -> None:
        """Memory format and the callables the step uses: under torchrun DDP wrappers that average
        the gradients over the ranks, compiled with --compile."""
        for net in self.nets.values():
            net.to(memory_format=self.memory_format)
        run = dict(self.nets.items())
        if distributed.current().distributed:
            sync_batchnorm = self.model.norm == "syncbatch"
            run = {k: distributed.data_parallel(net, self.device, sync_batchnorm) for k, net in run.items()}
        self.run = {k: torch.compile(net) if self.speed.compile else net for k, net in run.items()}

    @property
    def translator(self) -> nn.Module:
        return self.nets[self.translator_name]

    # -- losses ---------------------------------------------------------------------------------
    def gan_loss(self, pred: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        return ops.gan_loss(pred, target_is_real, self.loss.gan_mode, impl=self.speed.impl)

    def l1_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return ops.l1_loss(x, y, impl=self.speed.impl)

    def discriminator_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """0.5 * (GAN(D(real), real) + GAN(D(fake), fake)), plus the gradient penalty with wgangp."""
        fake = fake.detach()
        loss_real = self.gan_loss(D(real), True)
        loss_fake = self.gan_loss(D(fake), False)
        loss = (loss_real + loss_fake) * 0.5
        if self.loss.gan_mode == "wgangp":
            loss = loss + self.gradient_penalty(D, real, fake)
        return loss

    def gradient_penalty(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """WGAN-GP (Gulrajani et al.): lambda_gp * (||grad D(x_hat)||_2 - 1)^2 on random interpolates."""
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
        x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        with ops.reference_only():  # the penalty's backward differentiates D's backward
            out = D(x_hat)
            (grad,) = torch.autograd.grad(out, x_hat, torch.ones_like(out), create_graph=True)
        norm = (grad.flatten(1) + 1e-16).norm(2, dim=1)
        return ((norm - 1.0) ** 2).mean() * self.loss.lambda_gp

    # -- the update -----------------------------------------------------------------------------
    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        # autocast's cache of cast weights must not outlive a CUDA graph capture
        return torch.autocast(self.device.type, dtype=self.amp_dtype, cache_enabled=not self.speed.cuda_graphs)

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Backward `loss` and step optimizer `name` (gradients zeroed first)."""
        optimizer = self.optimizers[name]
        optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)

    @staticmethod
    def set_requires_grad(nets, flag: bool) -> None:
        for net in nets:
            net.requires_grad_(flag)

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, memory_format=self.memory_format, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()}

    def step(self, batch: dict) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def finish_step(self) -> None:
        if self.scaler is not None:
            self.scaler.update()

    # -- state ----------------------------------------------------------------------------------
    def pools(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        return {
            "nets": {k: v.state_dict() for k, v in self.nets.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "pools": {k: v.state_dict() for k, v in self.pools().items()},
        }

    def load_state_dict(self, state: dict) -> None:
        for k, net in self.nets.items():
            net.load_state_dict(state["nets"][k])
        for k, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][k])
            for group in optimizer.param_groups:  # loaded from the CPU: a captured step needs it on the device
                if torch.is_tensor(group["lr"]):
                    group["lr"] = group["lr"].to(self.device)
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        for k, pool in self.pools().items():
            pool.load_state_dict(state["pools"][k], self.device)
