"""The saved-model contract: what a model folder holds, how it is written and how it is read back.

A model folder (a run's `model/`) is a Hugging Face folder (config.json, safetensors weights or a
LoRA adapter, tokenizer files) plus `encoderkit.json` (task, columns, max_length, labels and the
task's decoding settings) and a README model card. Training writes it through `save`, inference
reads it through `load`; every file is checked on the way in, so a damaged or foreign folder is
one `error:` line naming the file, and no code inside a folder ever runs.
"""
