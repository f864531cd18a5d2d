"""SFT then DPO with LoRA (TRL + PEFT), resumable, and the merge that hands a model to the next stage."""
