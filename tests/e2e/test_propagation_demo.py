"""`iss demo` is automatic: the destination gets each version by itself through the bus
(embedded: kombu memory://, SQLite), and the JSON output carries the timeline."""

from __future__ import annotations

import json

from click.testing import CliRunner

from iss_plugin.cli.main import build_cli


def test_demo_json_has_the_timeline_and_the_refusal():
    result = CliRunner().invoke(build_cli(), ["demo", "--output", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)

    timeline = {t["version"]: t for t in out["timeline"]}
    assert [t["version"] for t in out["timeline"]] == ["1.0", "2.0"]
    assert timeline["1.0"]["bundle"] == "full"
    assert timeline["2.0"]["bundle"] == "incremental"
    for t in timeline.values():
        assert 0 <= t["bundle_ready_s"] <= t["live_s"]

    steps = {s["step"]: s for s in out["steps"]}
    assert steps["publish 1.0"]["result"] == "arrived" and "full bundle" in steps["publish 1.0"]["detail"]
    assert steps["publish 2.0"]["result"] == "arrived" and "incremental bundle" in steps["publish 2.0"]["detail"]
    assert steps["compare"]["result"] == "identical"
    refusal = steps["Red Hat into custom product"]
    assert refusal["result"] == "refused"
    assert "Red Hat content" in refusal["detail"] and "cannot go into the custom product" in refusal["detail"]
