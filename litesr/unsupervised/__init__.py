"""Super-resolution without paired training data: zero-shot (ZSSR), Deep Image Prior, unpaired cycle training and a
small SR3-style diffusion model. See docs/unsupervised.md."""
