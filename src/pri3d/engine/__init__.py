"""Training-engine pieces shared by pre-training and fine-tuning: checkpoints, logging, RNG, seeds."""
