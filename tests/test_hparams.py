"""TensorBoard HParams: a finished run's flattened config and final metrics, read back with
TensorBoard's own event reader and the HParams plugin's parser."""

from __future__ import annotations

import json

from tests.conftest import PROJECT


def accumulator(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    events.Reload()
    return events


def session_start(logdir):
    """The HParams plugin's session start info in LOGDIR (none: None)."""
    from tensorboard.plugins.hparams import metadata

    content = accumulator(logdir).PluginTagToContent(metadata.PLUGIN_NAME)
    if metadata.SESSION_START_INFO_TAG not in content:
        return None
    return metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])


def value_of(hparam):
    kind = hparam.WhichOneof("kind")
    return getattr(hparam, kind)


def test_finished_run_writes_hparams_and_final_metrics(cli, tmp_path):
    run = tmp_path / "run"
    cli(
        "fit", PROJECT / "configs" / "quickstart.yaml", "--run-dir", run, "--quiet",
        "--set", "train.epochs=1", "--set", "model.dropout=0.25", "--set", "model.hidden_units=[8]",
    )  # fmt: skip
    info = session_start(run / "logs")
    assert info is not None, "no HParams session start info in logs/"
    hparams = {name: value_of(value) for name, value in info.hparams.items()}
    assert hparams["model.type"] == "softmax"
    assert hparams["model.dropout"] == 0.25
    assert hparams["train.epochs"] == 1
    assert json.loads(hparams["model.hidden_units"]) == [8]
    assert hparams["summaries.enabled"] is True
    assert info.start_time_secs > 0
    record = json.loads((run / "run.json").read_text())
    import tensorflow as tf

    events = accumulator(run / "logs")
    for split in ("valid", "test"):
        assert record["final"][split]
        for name, value in record["final"][split].items():
            (event,) = events.Tensors(f"final/{split}/{name}")
            assert event.step == record["step"]
            assert abs(float(tf.make_ndarray(event.tensor_proto)) - value) < 1e-6


def test_no_hparams_when_summaries_are_off(cli, tmp_path):
    run = tmp_path / "run"
    cli(
        "fit", PROJECT / "configs" / "quickstart.yaml", "--run-dir", run, "--quiet",
        "--set", "train.epochs=1", "--set", "summaries.enabled=false",
    )  # fmt: skip
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert not (run / "logs").exists() or session_start(run / "logs") is None


def session_groups(logdir) -> dict:
    """{session name: (hparams, {(group, tag): value})} from TensorBoard's own HParams plugin
    backend, as its dashboard asks for them."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    events = multiplexer.EventMultiplexer()
    events.AddRunsFromDirectory(str(logdir))
    events.Reload()
    provider = data_provider.MultiplexerDataProvider(events, str(logdir))
    backend = backend_context.Context(
        base_plugin.TBContext(logdir=str(logdir), multiplexer=events, data_provider=provider)
    )
    request = api_pb2.ListSessionGroupsRequest(
        allowed_statuses=[api_pb2.STATUS_UNKNOWN], start_index=0, slice_size=100
    )
    response = list_session_groups.Handler(context.RequestContext(), backend, "", request).run()
    return {
        group.sessions[0].name: (
            {name: value_of(value) for name, value in group.hparams.items()},
            {(m.name.group, m.name.tag): m.value for m in group.metric_values},
        )
        for group in response.session_groups
    }


def test_tensorboards_hparams_dashboard_compares_two_runs(cli, tmp_path):
    runs = tmp_path / "runs"
    for name, rate in (("slow", 0.0005), ("fast", 0.005)):
        cli(
            "fit", PROJECT / "configs" / "quickstart.yaml", "--run-dir", runs / name, "--quiet",
            "--set", "train.epochs=1", "--set", f"train.optimizer.learning_rate={rate}",
        )  # fmt: skip
    groups = session_groups(runs)
    assert sorted(groups) == ["fast/logs", "slow/logs"]
    for name, rate in (("slow", 0.0005), ("fast", 0.005)):
        hparams, metrics = groups[f"{name}/logs"]
        assert abs(hparams["train.optimizer.learning_rate"] - rate) < 1e-9
        final = json.loads((runs / name / "run.json").read_text())["final"]
        assert abs(metrics[("", "final/test/accuracy")] - final["test"]["accuracy"]) < 1e-6
        assert abs(metrics[("valid", "accuracy")] - final["valid"]["accuracy"]) < 1e-6
