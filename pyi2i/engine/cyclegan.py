"""CycleGAN (Zhu et al. 2017): two generators, two discriminators, cycle and identity losses."""

from __future__ import annotations

import torch

from pyi2i.engine.method import Method
from pyi2i.engine.pool import make_pool
from pyi2i.registry import register_method


@register_method("cyclegan", aliases=("cycle_gan",))
class CycleGAN(Method):
    """G_A: A -> B, G_B: B -> A; D_A judges B images, D_B judges A images."""

    defaults = dict(netG="resnet_9blocks", norm="instance", gan_mode="lsgan", dataset_mode="unaligned",
                    pool_size=50, no_dropout=True)
    demo = ("unpaired", 64)
    demo_defaults = dict(load_size=72, crop_size=64, ngf=32, ndf=32, netG="resnet_6blocks", n_epochs=3,
                         n_epochs_decay=2, print_freq=20, eval_freq=1)
    generators = ("G_A", "G_B")
    loss_names = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")
    visual_names = ("real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A")
    translator_name = "G_A"

    def __init__(self, model, loss, optim, speed, device, options=None):
        super().__init__(model, loss, optim, speed, device, options)
        if loss.lambda_identity > 0 and model.input_nc != model.output_nc:
            raise ValueError("the identity loss feeds B images to G_A, so it needs --input_nc == --output_nc; "
                             "set --lambda_identity 0 for different channel counts")
        self.nets["G_A"] = self.make_G(model.input_nc, model.output_nc)
        self.nets["G_B"] = self.make_G(model.output_nc, model.input_nc)
        self.nets["D_A"] = self.make_D(model.output_nc)
        self.nets["D_B"] = self.make_D(model.input_nc)
        self.optimizers["G"] = self.make_adam(self.nets["G_A"], self.nets["G_B"])
        self.optimizers["D"] = self.make_adam(self.nets["D_A"], self.nets["D_B"])
        # A step captured in a CUDA graph cannot branch on host random numbers: its pools draw on the device.
        self.fake_A_pool = make_pool(loss.pool_size, on_device=speed.cuda_graphs)
        self.fake_B_pool = make_pool(loss.pool_size, on_device=speed.cuda_graphs)
        self.finish_setup()

    @staticmethod
    def test_visuals(G, sample):
        real_A, real_B = sample["A"], sample["B"]
        fake_B, fake_A = G["G_A"](real_A), G["G_B"](real_B)
        return dict(real_A=real_A, fake_B=fake_B, rec_A=G["G_B"](fake_B),
                    real_B=real_B, fake_A=fake_A, rec_B=G["G_A"](fake_A))

    def pools(self) -> dict:
        return {"fake_A": self.fake_A_pool, "fake_B": self.fake_B_pool}

    def step(self, batch: dict) -> dict[str, torch.Tensor]:
        o, r = self.loss, self.run
        G_A, G_B, D_A, D_B = r["G_A"], r["G_B"], r["D_A"], r["D_B"]
        frozen = [self.nets["D_A"], self.nets["D_B"]]
        batch = self.to_device(batch)
        real_A, real_B = batch["A"], batch["B"]
        with self.autocast():
            fake_B = G_A(real_A)
            rec_A = G_B(fake_B)
            fake_A = G_B(real_B)
            rec_B = G_A(fake_A)

            # generators, with the discriminators frozen
            self.set_requires_grad(frozen, False)
            if o.lambda_identity > 0:
                idt_A = G_A(real_B)
                loss_idt_A = self.l1_loss(idt_A, real_B) * o.lambda_B * o.lambda_identity
                idt_B = G_B(real_A)
                loss_idt_B = self.l1_loss(idt_B, real_A) * o.lambda_A * o.lambda_identity
            else:
                idt_A = idt_B = None
                loss_idt_A = loss_idt_B = real_A.new_zeros(())
            loss_G_A = self.gan_loss(D_A(fake_B), True)
            loss_G_B = self.gan_loss(D_B(fake_A), True)
            loss_cycle_A = self.l1_loss(rec_A, real_A) * o.lambda_A
            loss_cycle_B = self.l1_loss(rec_B, real_B) * o.lambda_B
            loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        self.update("G", loss_G)

        # discriminators, on real images and pooled fakes
        self.set_requires_grad(frozen, True)
        with self.autocast():
            loss_D_A = self.discriminator_loss(D_A, real_B, self.fake_B_pool.query(fake_B))
            loss_D_B = self.discriminator_loss(D_B, real_A, self.fake_A_pool.query(fake_A))
        self.update("D", loss_D_A + loss_D_B)
        self.finish_step()

        self.visuals = dict(real_A=real_A, fake_B=fake_B, rec_A=rec_A, idt_B=idt_B,
                            real_B=real_B, fake_A=fake_A, rec_B=rec_B, idt_A=idt_A)
        losses = dict(D_A=loss_D_A, G_A=loss_G_A, cycle_A=loss_cycle_A, idt_A=loss_idt_A,
                      D_B=loss_D_B, G_B=loss_G_B, cycle_B=loss_cycle_B, idt_B=loss_idt_B)
        return {k: v.detach().float() for k, v in losses.items()}
