"""The original release's networks and training loop, written from its published description.

An oracle, not part of the training path: the networks' state-dict keys are the original
checkpoint layout and their outputs are what pyi2i's networks must reproduce from the same
weights; the loop (eager fp32, separate kernels, Python image pool, the losses read on the host only
every `print_freq` steps, as the original's train.py does) is what pyi2i's engine must match bit
for bit on the CPU and what its benchmarks measure against.
"""

from __future__ import annotations

import random

import torch
import torch.nn as nn


def norm_layer(norm, channels):
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ResnetBlock(nn.Module):
    def __init__(self, dim, norm, use_dropout):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim), nn.ReLU(True)]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), norm_layer(norm, dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, norm, use_dropout, n_blocks):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=bias), norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(2):
            m = 2**i
            layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1, bias=bias),
                       norm_layer(norm, ngf * m * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for i in range(2):
            m = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                       norm_layer(norm, ngf * m // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm="batch", use_dropout=False):
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        downconv = nn.Conv2d(input_nc or outer_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        downrelu, uprelu = nn.LeakyReLU(0.2, True), nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, uprelu, upconv, norm_layer(norm, outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, norm_layer(norm, inner_nc), submodule, uprelu, upconv,
                      norm_layer(norm, outer_nc)] + ([nn.Dropout(0.5)] if use_dropout else [])
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)  # x was rewritten by the in-place LeakyReLU


class UnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf, norm, use_dropout):
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                             norm=norm)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf, n_layers, norm):
        super().__init__()
        bias = norm == "instance"
        layers = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=bias),
                       norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias),
                   norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class PixelDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf, norm):
        super().__init__()
        bias = norm == "instance"
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias), norm_layer(norm, ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias))

    def forward(self, x):
        return self.net(x)


class ImagePool:
    """The original pool: a Python list and Python's `random`. pyi2i.engine.pool.HostPool does the
    same draws; this transcription stays apart from it on purpose, as the oracle it is checked against."""

    def __init__(self, size):
        self.size, self.images = size, []

    def query(self, images):
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.detach().unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


class GANLoss(nn.Module):
    def __init__(self, gan_mode):
        super().__init__()
        self.register_buffer("real_label", torch.tensor(1.0))
        self.register_buffer("fake_label", torch.tensor(0.0))
        self.loss = nn.MSELoss() if gan_mode == "lsgan" else nn.BCEWithLogitsLoss()

    def forward(self, prediction, target_is_real):
        target = (self.real_label if target_is_real else self.fake_label).expand_as(prediction)
        return self.loss(prediction, target)


def _adam(nets, lr, beta1):
    return torch.optim.Adam([p for n in nets for p in n.parameters()], lr=lr, betas=(beta1, 0.999))


def _set_requires_grad(nets, flag):
    for net in nets:
        for p in net.parameters():
            p.requires_grad = flag


class _Loop:
    losses: dict = {}  # the last step's losses, tensors on the networks' device

    def current_losses(self) -> dict[str, float]:
        """get_current_losses() of the original: the last step's losses read on the host (a sync)."""
        return {k: float(v) for k, v in self.losses.items()}


class CycleGANLoop(_Loop):
    """optimize_parameters() of the original CycleGAN model."""

    def __init__(self, G_A, G_B, D_A, D_B, *, lr=2e-4, beta1=0.5, lambda_A=10.0, lambda_B=10.0,
                 lambda_identity=0.5, pool_size=50, gan_mode="lsgan"):
        self.G_A, self.G_B, self.D_A, self.D_B = G_A, G_B, D_A, D_B
        self.lambda_A, self.lambda_B, self.lambda_identity = lambda_A, lambda_B, lambda_identity
        self.fake_A_pool, self.fake_B_pool = ImagePool(pool_size), ImagePool(pool_size)
        self.criterionGAN = GANLoss(gan_mode).to(next(G_A.parameters()).device)
        self.criterionCycle = self.criterionIdt = nn.L1Loss()
        self.optimizer_G = _adam([G_A, G_B], lr, beta1)
        self.optimizer_D = _adam([D_A, D_B], lr, beta1)

    def backward_D_basic(self, netD, real, fake):
        loss_D_real = self.criterionGAN(netD(real), True)
        loss_D_fake = self.criterionGAN(netD(fake.detach()), False)
        loss_D = (loss_D_real + loss_D_fake) * 0.5
        loss_D.backward()
        return loss_D

    def optimize(self, real_A, real_B) -> dict[str, torch.Tensor]:
        """One optimize_parameters(); the losses stay tensors (the identity losses 0 without it)."""
        self.fake_B = self.G_A(real_A)
        self.rec_A = self.G_B(self.fake_B)
        self.fake_A = self.G_B(real_B)
        self.rec_B = self.G_A(self.fake_A)
        _set_requires_grad([self.D_A, self.D_B], False)
        self.optimizer_G.zero_grad()
        lam = self.lambda_identity
        if lam > 0:
            loss_idt_A = self.criterionIdt(self.G_A(real_B), real_B) * self.lambda_B * lam
            loss_idt_B = self.criterionIdt(self.G_B(real_A), real_A) * self.lambda_A * lam
        else:
            loss_idt_A = loss_idt_B = 0
        loss_G_A = self.criterionGAN(self.D_A(self.fake_B), True)
        loss_G_B = self.criterionGAN(self.D_B(self.fake_A), True)
        loss_cycle_A = self.criterionCycle(self.rec_A, real_A) * self.lambda_A
        loss_cycle_B = self.criterionCycle(self.rec_B, real_B) * self.lambda_B
        loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        loss_G.backward()
        self.optimizer_G.step()
        _set_requires_grad([self.D_A, self.D_B], True)
        self.optimizer_D.zero_grad()
        loss_D_A = self.backward_D_basic(self.D_A, real_B, self.fake_B_pool.query(self.fake_B))
        loss_D_B = self.backward_D_basic(self.D_B, real_A, self.fake_A_pool.query(self.fake_A))
        self.optimizer_D.step()
        self.losses = dict(D_A=loss_D_A, G_A=loss_G_A, cycle_A=loss_cycle_A, idt_A=loss_idt_A,
                           D_B=loss_D_B, G_B=loss_G_B, cycle_B=loss_cycle_B, idt_B=loss_idt_B)
        return self.losses


class Pix2PixLoop(_Loop):
    """optimize_parameters() of the original pix2pix model."""

    def __init__(self, G, D, *, lr=2e-4, beta1=0.5, lambda_L1=100.0, gan_mode="vanilla"):
        self.G, self.D, self.lambda_L1 = G, D, lambda_L1
        self.criterionGAN = GANLoss(gan_mode).to(next(G.parameters()).device)
        self.criterionL1 = nn.L1Loss()
        self.optimizer_G = _adam([G], lr, beta1)
        self.optimizer_D = _adam([D], lr, beta1)

    def optimize(self, real_A, real_B) -> dict[str, torch.Tensor]:
        """One optimize_parameters(); the losses stay tensors."""
        fake_B = self.G(real_A)
        _set_requires_grad([self.D], True)
        self.optimizer_D.zero_grad()
        fake_AB = torch.cat((real_A, fake_B), 1)
        loss_D_fake = self.criterionGAN(self.D(fake_AB.detach()), False)
        loss_D_real = self.criterionGAN(self.D(torch.cat((real_A, real_B), 1)), True)
        ((loss_D_fake + loss_D_real) * 0.5).backward()
        self.optimizer_D.step()
        _set_requires_grad([self.D], False)
        self.optimizer_G.zero_grad()
        loss_G_GAN = self.criterionGAN(self.D(fake_AB), True)
        loss_G_L1 = self.criterionL1(fake_B, real_B) * self.lambda_L1
        (loss_G_GAN + loss_G_L1).backward()
        self.optimizer_G.step()
        self.losses = dict(G_GAN=loss_G_GAN, G_L1=loss_G_L1, D_real=loss_D_real, D_fake=loss_D_fake)
        return self.losses


def train(loop, batches, print_freq: int) -> list[dict[str, float]]:
    """The original train.py's inner loop: one optimize per batch (moved to the loop's device, as
    set_input does), the losses read only every `print_freq` steps. Returns those readings."""
    device = loop.optimizer_G.param_groups[0]["params"][0].device
    readings = []
    for step, batch in enumerate(batches, start=1):
        loop.optimize(batch["A"].to(device), batch["B"].to(device))
        if step % print_freq == 0:
            readings.append(loop.current_losses())
    return readings
