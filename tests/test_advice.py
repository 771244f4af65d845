"""The recommend report's sentences follow the book's verdict rule (uncertainty.decided): these
build Summaries by hand, one per case the walk-through found, so each rule is checked without
training anything."""
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from backbone_bench.recommend import advice
from backbone_bench.recommend.settings import Settings


def candidate(backbone, mode, test, lo, hi, val, collapsed=0, n_runs=1, n_subsets=1, speed=None):
    return dict(backbone=backbone, mode=mode, test=test, test_lo=lo, test_hi=hi, val=val, collapsed=collapsed,
                n_runs=n_runs, n_subsets=n_subsets, n_val=40, infer_images_per_s=speed,
                cost_device="cpu" if speed else None, cost_resolution=224 if speed else None)


def summary(rows, difference=None, pretraining=None, classes=4):
    cand = pd.DataFrame(rows).assign(recommended=[i == 0 for i in range(len(rows))])
    recommended = cand.iloc[0].to_dict()
    runner_up = cand.iloc[1].to_dict() if len(cand) > 1 and cand.iloc[1]["mode"] != "scratch" else None
    settings = Settings("imgs", "out", resolution=32, n_boot=200).__dict__
    return advice.Summary(settings, dict(classes=[f"c{i}" for i in range(classes)], kind="folder"), pd.DataFrame(),
                          cand, recommended, runner_up, difference, pretraining, pd.DataFrame(), None, 1 / classes)


def test_same_network_is_a_mode_choice_and_unsupported_gains_are_not_claimed():
    s = summary([candidate("resnet18", "finetune", 0.62, 0.55, 0.70, 0.66),
                 candidate("resnet18", "linear_probe", 0.60, 0.52, 0.68, 0.64),
                 candidate("resnet18", "scratch", 0.25, 0.25, 0.25, 0.25, collapsed=1)],
                difference=dict(diff=0.02, lo=-0.04, hi=0.08, separated=False),
                pretraining=dict(backbone="resnet18", finetune=0.62, scratch=0.25, gain=0.125, lo=-0.009, hi=0.278))
    text = advice.answer_text(s, markdown=False)
    assert "cheaper one" not in text
    assert "the same network linear probe" in text and "choice is one of mode, not of backbone" in text
    assert "Pretraining buys" not in text and "+0.125 [-0.009, +0.278]" in text
    assert "resnet18's scratch twin" in text and "collapsed to one class in 1 of 1 run(s)" in text
    assert "measures no gain from pretraining" in text and "chance 0.250" in text
    # a separated gain against a collapsed twin is claimed no more than an unseparated one
    s.pretraining = dict(backbone="resnet18", finetune=0.62, scratch=0.25, gain=0.37, lo=0.30, hi=0.44)
    text = advice.answer_text(s, markdown=False)
    assert "Pretraining buys" not in text and "measures no gain from pretraining" in text
    assert "test images only (one training subset)" in text and "chance is 0.250" in text


def test_a_separated_gain_is_claimed_and_a_test_disagreement_gets_a_next_step():
    s = summary([candidate("a_net", "finetune", 0.70, 0.66, 0.74, 0.80, n_runs=3, n_subsets=3),
                 candidate("b_net", "linear_probe", 0.78, 0.75, 0.81, 0.79, n_runs=3, n_subsets=3),
                 candidate("a_net", "scratch", 0.40, 0.35, 0.45, 0.41, n_runs=3, n_subsets=3)],
                difference=dict(diff=-0.08, lo=-0.12, hi=-0.04, separated=True),
                pretraining=dict(backbone="a_net", finetune=0.70, scratch=0.40, gain=0.30, lo=0.24, hi=0.36))
    text = advice.answer_text(s, markdown=False)
    assert "Validation and test disagree" in text and "validation (40 images)" in text
    assert "label more validation images" in text and "runner-up" in text
    assert "Pretraining buys +0.300 [+0.240, +0.360] over a_net's scratch twin" in text
    assert "3 seeds, then test images" in text


def test_unseparated_networks_name_the_faster_and_chance_is_flagged():
    s = summary([candidate("a_net", "finetune", 0.30, 0.22, 0.38, 0.5, speed=900.0),
                 candidate("b_net", "finetune", 0.28, 0.20, 0.36, 0.4, speed=300.0)],
                difference=dict(diff=0.02, lo=-0.03, hi=0.07, separated=False))
    text = advice.answer_text(s, markdown=False)
    assert "either will do" in text and "a_net is the faster at inference (900 against 300" in text
    assert "interval contains chance" in text
    s.runner_up["infer_images_per_s"] = 850.0
    assert "about the same speed (900 and 850" in advice.answer_text(s, markdown=False)
    assert "(contains chance)" in advice.candidates_display(s).to_html()


def test_rerun_line_keeps_every_option():
    import os

    line = Settings("imgs", "out", seeds=1, resolution=48, steps=2, n_boot=100).command()
    assert "--n-boot 100" in line and "--steps 2" in line and "--resolution 48" in line
    assert f"recommend {os.path.abspath('imgs')} " in line  # the input as an absolute path


def test_how_this_was_made_lists_only_what_ran():
    s = summary([candidate("a_net", "linear_probe", 0.7, 0.6, 0.8, 0.7), candidate("b_net", "linear_probe", 0.6, 0.5, 0.7, 0.6)])
    s.runs = pd.DataFrame(dict(status="ok", device="cpu", git_commit="abc", shots=20, recipe_steps=[0, 0],
                               mode=["linear_probe", "linear_probe"], backbone=["a_net", "b_net"]))
    text = advice.settings_text(s)
    assert "2 backbone(s) screened with a linear probe" in text and "fine-tuned" not in text and "scratch" not in text
    assert "--n-boot" not in Settings("imgs", "out").command()      # the default is not repeated


def test_undecodable_bytes_are_named_without_the_buffer():
    from backbone_bench.data.sources import decode

    with pytest.raises(Image.UnidentifiedImageError) as err:
        decode(b"not an image", 3, 32)
    assert "BytesIO" not in str(err.value) and "not an image format" in str(err.value)
    good = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good, "PNG")
    assert decode(good.getvalue(), 3, 16)[1].shape == (16, 16, 3)
