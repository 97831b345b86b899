"""Measurements of what a model knows (behaviour, TOFU/MUSE metrics, parametric traces,
latent probes, relearning attacks). May import workbench.models, workbench.tasks and
workbench.sites; never workbench.edit or workbench.study. Filled in by the Probes issue;
the accuracy primitive it builds on is `workbench.models.scoring`."""
