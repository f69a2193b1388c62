"""The loop and everything around it; `make_trainer` is where `fit`, `--smoke` and `launch`'s
processes start."""


def make_trainer(config, run_dir, *, quiet: bool = False, local: bool = False):
    """What `fit`, `--smoke` and `launch`'s processes train with: the `Trainer`, or for
    `parameter_server` this process's task (`local`: an in-process cluster, for smoke)."""
    if config.device.strategy == "parameter_server":
        from tftrain.runners.parameter_server import parameter_server_task

        return parameter_server_task(config, run_dir, quiet=quiet, local=local)
    from tftrain.runners.trainer import Trainer

    return Trainer(config, run_dir, quiet=quiet)
