"""``keras-dit``: argument parsing and the one-line error handling of user mistakes."""

import argparse
import contextlib
import errno
import sys

from keras_dit.cli.config import load_config, presets, schema_help

# subcommand -> (config sections it reads, default config, summary)
COMMANDS = {
    "demo": (("data", "model", "objective", "discrete", "repa", "train", "sample", "distribution"), "digits",
             "train a conditional DiT on the built-in digits or alphabet, sample it, report its scores"),
    "train-vae": (("data", "vae", "train"), None, "train a KL-VAE on the images of data.*"),
    "scale-factor": (("data", "vae", "train"), None, "measure the VAE's latent scale factor and store it in the VAE"),
    "cache-latents": (("data", "vae", "train"), None, "encode the data set once with the VAE into a latent cache"),
    "train": (("data", "model", "objective", "discrete", "repa", "train", "sample", "distribution"), None,
              "train a diffusion model (checkpoints, CSV/TensorBoard logs, sample grids, loss curve)"),
    "sample": (("sample", "data", "model", "discrete"), None,
               "generate images: grid.png, images/*.png and samples.npz"),
    "evaluate": (("evaluate", "sample", "data"), None,
                 "score samples: digits class accuracy, alphabet PSNR and background accuracy, FID"),
    "convert": (("convert",), None, "convert a diffusers folder or reference DiT checkpoint to .keras"),
}
RESUMABLE = ("demo", "train", "train-vae")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-dit",
        description="Diffusion Transformers for Keras 3. Every subcommand reads a YAML config (a file or a shipped "
                    f"preset: {', '.join(presets())}); any key can be overridden with --set key=value. The backend "
                    "is Keras' (set KERAS_BACKEND=jax|tensorflow|torch).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (sections, default, summary) in COMMANDS.items():
        sub = subparsers.add_parser(
            name, help=summary, description=summary, formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="config keys (YAML sections, or --set section.key=value):\n" + schema_help(sections),
        )
        sub.add_argument("--config", "-c", default=default, metavar="FILE_OR_PRESET",
                         help=f"YAML config file or preset name ({', '.join(presets())}); "
                              f"default: {default or 'the built-in defaults listed below'}")
        sub.add_argument("--set", "-s", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                         help="override a config key; the value is parsed as YAML (5, 1e-3, true, null, [1, 2]); "
                              "repeat for several keys")
        sub.add_argument("--print-config", action="store_true",
                         help="print the validated config as YAML and exit without doing any work")
        if name == "train":
            sub.add_argument("--devices", type=int, default=None, metavar="N",
                             help="train on the first N devices: sets distribution.devices, and "
                                  "distribution.type=data_parallel unless the config chooses a type")
        if name in RESUMABLE:
            sub.add_argument("--resume", action="store_true",
                             help="continue the run in output_dir from its last checkpoint (after Ctrl-C or a "
                                  "killed process); at most the last train.checkpoint_every epochs are redone")
    return parser


def run(argv=None):
    """Parse ``argv``, validate the config, run the subcommand; returns its result. Errors propagate."""
    from keras_dit.cli.config import to_yaml

    args = build_parser().parse_args(argv)
    config = load_config(args.config, args.overrides)
    if getattr(args, "devices", None) is not None:
        overrides = [*args.overrides, f"distribution.devices={args.devices}"]
        if config["distribution.type"] == "none":
            overrides.append("distribution.type=data_parallel")
        config = load_config(args.config, overrides)
    if args.print_config:
        print(to_yaml(config), end="")
        return None
    from keras_dit.cli import builders, commands  # imports Keras and the backend: after the config is known to be valid

    function = getattr(commands, args.command.replace("-", "_"))
    scope = builders.distribution_scope(config) if args.command == "train" else contextlib.nullcontext()
    with scope:
        return function(config, resume=args.resume) if args.command in RESUMABLE else function(config)


# OSErrors that are the user's to fix (permissions, a full or read-only disk, a file where a folder should be)
USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR,
               errno.EEXIST, errno.ENAMETOOLONG}


def _fail(message):
    print(f"keras-dit: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


def main(argv=None):
    """Entry point of ``keras-dit``: user errors print one line ``keras-dit: error: ...`` and exit with status 2."""
    try:
        run(argv)
    except (ValueError, FileNotFoundError, FloatingPointError) as error:
        _fail(error)
    except OSError as error:
        if error.errno not in USER_ERRNOS:
            raise
        where = f" {error.filename!r}" if error.filename else ""
        _fail(f"cannot write{where}: {error.strerror or error}; free disk space, fix the permissions or choose "
              "another output_dir (--set output_dir=...)")
    except KeyboardInterrupt:
        print("keras-dit: interrupted; the last checkpoint is kept: continue with the same command and --resume",
              file=sys.stderr)
        sys.exit(130)
    return 0
