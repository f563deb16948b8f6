"""The adversarial, fault and load suite (issue 6): each module proves one measurable guarantee."""
