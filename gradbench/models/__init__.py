"""Model code for the model tasks (``vae-digits``, ``sbn-digits``): data, the VAE, its checkpoint cache.

Kept apart from the runner (DESIGN.md §7, "Model tasks are tasks"): a model task is an ordinary
:class:`gradbench.core.Task` whose θ are encoder logits at a checkpoint and whose f is the decoder's negative
log-likelihood; everything model-specific lives here.
"""
