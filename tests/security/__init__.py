"""The adversarial, fault and load suite: each module proves one measurable guarantee."""
