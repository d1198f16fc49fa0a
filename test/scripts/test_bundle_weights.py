"""scripts/bundle_weights.py: bundling one checkpoint, and averaging several of one run."""

from __future__ import annotations

import pytest
import torch

from roadseg_ros.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def bundle_weights(load_script):
    return load_script("bundle_weights")


def test_one_checkpoint_keeps_its_weights_and_gains_its_data_terms(tmp_path, bundle_weights, tiny_checkpoint):
    src = tiny_checkpoint(tmp_path / "best.pt", seed=0)
    out = tmp_path / "bundled.pt"
    assert bundle_weights.main([str(src), "--input-size", "96x64", "--output", str(out)]) == 0
    before, after = load_checkpoint(src), load_checkpoint(out)
    assert after.input_size == (96, 64)
    assert after.training["bundled"]["from"] == str(src)
    assert after.training["bundled"]["trained_input_size"] == [64, 48]
    assert "CamVid" in after.training["data_licenses"]["camvid"]
    for key, t in before.state_dict.items():
        torch.testing.assert_close(after.state_dict[key].float(), t.half().float())


def test_several_checkpoints_are_averaged(tmp_path, bundle_weights, tiny_checkpoint):
    sources = [tiny_checkpoint(tmp_path / f"ep{i}.pt", seed=i) for i in (1, 2, 3)]
    out = tmp_path / "avg.pt"
    assert bundle_weights.main([*map(str, sources), "--output", str(out)]) == 0
    loaded = [load_checkpoint(s).state_dict for s in sources]
    avg = load_checkpoint(out)
    assert avg.training["bundled"]["from"] == [str(s) for s in sources]
    checked = 0
    for key, t in avg.state_dict.items():
        if t.is_floating_point():
            expected = torch.stack([sd[key].float() for sd in loaded]).mean(0)
            torch.testing.assert_close(t.float(), expected.half().float())
            checked += 1
        else:   # step counters are the last file's, not a mean
            assert torch.equal(t, loaded[-1][key])
    assert checked > 10
    # the mean really differs from every source (a copy of one would pass the loop above only by luck)
    key = next(k for k, t in avg.state_dict.items() if t.is_floating_point() and t.numel() > 10)
    assert all(not torch.allclose(avg.state_dict[key].float(), sd[key].float()) for sd in loaded)


def test_checkpoints_of_different_models_are_refused(tmp_path, bundle_weights, tiny_checkpoint):
    a = tiny_checkpoint(tmp_path / "a.pt", seed=0, width=8)
    b = tiny_checkpoint(tmp_path / "b.pt", seed=1, width=16)
    with pytest.raises(SystemExit, match="arch_kwargs.*only checkpoints of one model"):
        bundle_weights.main([str(a), str(b), "--output", str(tmp_path / "x.pt")])
    assert not (tmp_path / "x.pt").exists()
