"""Jupyter kernels on compute nodes through Slurm, without a hub.

- :mod:`.options`: the kernel's options (``metadata.kernel_provisioner.config``): checked for shape without
  Slurm, then validated into a :class:`~dkrzspawner.options.JobRequest` by the spawner's own options model;
  the ``salloc``/``srun`` argument lists (pure).
- :mod:`.activation`: the environment variables that activating a virtualenv or a conda env sets (pure).
- :mod:`.provisioner`: :class:`~.provisioner.SlurmProvisioner`, entry point ``dkrz-slurm-provisioner``.
- :mod:`.jobshape`: what Slurm says of a running allocation (its nodes, tasks and CPUs per task).
- :mod:`.wrap`: ``create --wrap``, an installed kernel's command run through Slurm.
- :mod:`.system`: the admins' system kernels built on environment modules (``install-system``).
- :mod:`.cli`: the ``dkrz-kernel`` command (create, list, remove, register-env, install-system).
"""
