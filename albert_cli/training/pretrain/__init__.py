"""`albert pretrain`: ALBERT's masked-LM + sentence-order pretraining (`options`, `corpus`, `run`), also the engine
of `albert finetune --tapt-steps` (`albert_cli.training.tapt`)."""
