"""python -m pyi2i.evaluate --real DIR --fake DIR

Image-quality metrics of generated images: FID and KID against the real images (Inception-v3 pool
features), and, when every fake has a real image of the same name (NAME.png, NAME_fake.png and
NAME_real.png pair up), PSNR, SSIM and LPIPS between the pairs. In a folder written by translate,
only the NAME_fake.png files count as generated; its NAME_real.png copies of the inputs are left out.

Inception-v3 and LPIPS weights are downloaded on first use where there is network access; offline,
the command names the file it needs and where to put it (or take --inception_weights FILE), and
computes the metrics that need no weights.
"""

from __future__ import annotations

import argparse
import json
import logging

from pyi2i import fileio, metrics
from pyi2i.cli import console_script
from pyi2i.engine.trainer import resolve_device
from pyi2i.errors import UserError
from pyi2i.options import add_evaluation_options, evaluation_values, positive_int

log = logging.getLogger("pyi2i")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pyi2i.evaluate", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--real", required=True, help="folder of real images (the target domain, or the true targets)")
    p.add_argument("--fake", required=True, help="folder of generated images")
    p.add_argument("--batch_size", type=positive_int, default=50)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    add_evaluation_options(p)
    return p


def main(argv: list[str] | None = None) -> None:
    opt = parser().parse_args(argv)
    chosen = evaluation_values(opt)
    device = resolve_device(opt.device)
    image_metrics, skipped = metrics.build_metrics(inception_weights=chosen.inception_weights,
                                                   feature_extractor=chosen.feature_extractor,
                                                   lpips=not chosen.no_lpips, device=device)
    if image_metrics is None:
        raise UserError(next(iter(skipped.values())))
    values, more, counts = metrics.evaluate_folders(opt.real, opt.fake, image_metrics, opt.batch_size)
    skipped = {k: v for k, v in {**skipped, **more}.items() if k not in values}
    for reason in dict.fromkeys(skipped.values()):
        log.warning("%s skipped: %s", ", ".join(k.upper() for k, v in skipped.items() if v == reason), reason)
    if opt.json:
        fileio.write_text(opt.json, json.dumps({"metrics": values, "skipped": skipped, "counts": counts}, indent=2))
    if not values:
        raise UserError(f"no metric could be computed for {opt.fake} against {opt.real} (reasons above)")
    log.info("%d real, %d generated images, %d pairs", counts["real"], counts["fake"], counts["pairs"])
    for name, value in values.items():
        print(f"{name} {value:.6g}")


cli = console_script(main)

if __name__ == "__main__":
    cli()
