"""Training loops (finetune, pretrain) and their checkpoints."""
