"""pix2pix (Isola et al. 2017): a conditional GAN plus L1 on paired data."""

from __future__ import annotations

import torch

from pyi2i.engine.method import Method
from pyi2i.registry import register_method


@register_method("pix2pix")
class Pix2Pix(Method):
    """G: A -> B; D judges cat(A, B) pairs. The D step comes first, then the G step."""

    defaults = dict(netG="unet_256", norm="batch", gan_mode="vanilla", dataset_mode="aligned", pool_size=0,
                    no_dropout=False)
    demo = ("paired", 128)
    demo_defaults = dict(load_size=142, crop_size=128, ngf=32, ndf=32, netG="unet_128", n_epochs=3, n_epochs_decay=2,
                         print_freq=20, eval_freq=1)

    generators = ("G",)
    loss_names = ("G_GAN", "G_L1", "D_real", "D_fake")
    visual_names = ("real_A", "fake_B", "real_B")
    translator_name = "G"

    def __init__(self, model, loss, optim, speed, device, options=None):
        super().__init__(model, loss, optim, speed, device, options)
        self.nets["G"] = self.make_G(model.input_nc, model.output_nc)
        self.nets["D"] = self.make_D(model.input_nc + model.output_nc)
        self.optimizers["G"] = self.make_adam(self.nets["G"])
        self.optimizers["D"] = self.make_adam(self.nets["D"])
        self.finish_setup()

    @staticmethod
    def test_visuals(G, sample):
        return dict(real_A=sample["A"], fake_B=G["G"](sample["A"]), real_B=sample["B"])

    def step(self, batch: dict) -> dict[str, torch.Tensor]:
        G, D = self.run["G"], self.run["D"]
        batch = self.to_device(batch)
        real_A, real_B = batch["A"], batch["B"]
        with self.autocast():
            fake_B = G(real_A)
            fake_AB = torch.cat([real_A, fake_B], 1)

            self.set_requires_grad([self.nets["D"]], True)
            loss_D_fake = self.gan_loss(D(fake_AB.detach()), False)
            loss_D_real = self.gan_loss(D(torch.cat([real_A, real_B], 1)), True)
            loss_D = (loss_D_fake + loss_D_real) * 0.5
            if self.loss.gan_mode == "wgangp":
                loss_D = loss_D + self.gradient_penalty(D, torch.cat([real_A, real_B], 1), fake_AB.detach())
        self.update("D", loss_D)

        self.set_requires_grad([self.nets["D"]], False)
        with self.autocast():
            loss_G_GAN = self.gan_loss(D(fake_AB), True)
            loss_G_L1 = self.l1_loss(fake_B, real_B) * self.loss.lambda_L1
            loss_G = loss_G_GAN + loss_G_L1
        self.update("G", loss_G)
        self.finish_step()

        self.visuals = dict(real_A=real_A, fake_B=fake_B, real_B=real_B)
        losses = dict(G_GAN=loss_G_GAN, G_L1=loss_G_L1, D_real=loss_D_real, D_fake=loss_D_fake)
        return {k: v.detach().float() for k, v in losses.items()}
