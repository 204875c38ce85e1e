"""Jupyter kernels on compute nodes through Slurm, without a hub: the provisioner and the ``dkrz-kernel`` CLI.

- :mod:`.kernelspec`: what a kernelspec may ask for (``metadata.kernel_provisioner.config`` and its ``env``):
  checked for shape without Slurm, then validated into a :class:`~dkrzspawner.options.JobRequest` by the hub's
  own validation (pure).
- :mod:`.step`: what runs in the kernel's job step: the allocation's view, the modules, then the kernel (pure).
- :mod:`.activation`: the environment variables that activating a virtualenv or a conda env sets (pure).
- :mod:`.provisioner`: :class:`~.provisioner.SlurmProvisioner`, entry point ``dkrz-slurm-provisioner``.
- :mod:`.wrap`: ``create --wrap``, an installed kernel's command run through Slurm.
- :mod:`.system`: the admins' system kernels built on environment modules (``install-system``).
- :mod:`.templates`: the user's own kernels from the templates: create, edit, register an environment, list,
  remove, the environments to pick; shared by the CLI and the JupyterLab extension (:mod:`dkrzspawner.lab`).
- :mod:`.cli`: the ``dkrz-kernel`` command (create, list, remove, register-env, install-system).

The Slurm commands (``salloc``, ``srun``, ``squeue``, ``sacct``, ``scancel``) are built and read in
:mod:`dkrzspawner.slurm.allocations`, never here. May import the core (options, offer, units, modules,
cluster, reasons, slurm), jupyter_client and jupyter_core; never JupyterHub, the spawner or the hub services.
"""
