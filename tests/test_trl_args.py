"""sft/dpo.trl_args and lora.peft_args: checked against the installed TRL/PEFT before any step, applied last."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from cai_bootstrap.cli import app
from cai_bootstrap.errors import UserError
from cai_bootstrap.training import extra_args
from cai_bootstrap.training.config import DPOSettings, LoraSettings, SFTSettings
from cai_bootstrap.training.dpo import dpo_args
from cai_bootstrap.training.lora import lora_config
from cai_bootstrap.training.sft import sft_args
from test_pipeline import _recipe


def test_known_arguments_reach_the_trainer_configs(tmp_path):
    sft = sft_args(SFTSettings(trl_args={"neftune_noise_alpha": 5.0, "optim": "adamw_torch"}), tmp_path)
    assert sft.neftune_noise_alpha == 5.0 and sft.optim == "adamw_torch"
    dpo = dpo_args(DPOSettings(trl_args={"use_weighting": True}), tmp_path, has_eval=False)
    assert dpo.use_weighting is True and dpo.beta == DPOSettings().beta
    assert lora_config(LoraSettings(peft_args={"use_rslora": True})).use_rslora is True
    assert lora_config(LoraSettings()).use_rslora is False


@pytest.mark.parametrize(
    ("section", "args", "message"),
    [
        ("sft", {"neftune_noise_alfa": 5}, "is not a field of the installed trl SFTConfig"),
        ("dpo", {"learning_rate": 1e-3}, "use learning_rate"),
        ("dpo", {"optim": "no_such_optimizer"}, "is not accepted by DPOConfig"),
        ("lora", {"use_rslorra": True}, "is not a field of the installed peft LoraConfig"),
        ("lora", {"r": 8}, "use lora.r"),
    ],
)
def test_bad_arguments_are_refused(section, args, message):
    given = {"sft": {}, "dpo": {}, "lora": {}} | {section: args}
    with pytest.raises(UserError, match=message):
        extra_args.check(0, given["sft"], given["dpo"], given["lora"])


def test_unknown_trl_argument_stops_the_run_before_any_step(tmp_path, tiny_model_dir):
    path = _recipe(tmp_path, tiny_model_dir)
    recipe = yaml.safe_load(open(path))
    recipe["stages"][0]["sft"]["trl_args"] = {"not_a_trl_field": 1}
    open(path, "w").write(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["run", "--recipe", path, "--quiet"])
    assert result.exit_code == 2
    assert "stages.0.sft.trl_args.not_a_trl_field is not a field" in result.output
    assert not (tmp_path / "run").exists()
