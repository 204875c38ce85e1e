"""Everything that talks to Slurm by running its commands: the runner and the job commands.

- :mod:`.runner`: runs a command (an argument list, never a shell; as the user through sudo; with a timeout and
  bounded output) and types its failures (:class:`SlurmUnreachable`, :class:`SlurmRejected`,
  :class:`JobUnknown`, :class:`UnexpectedOutput`, ...). A caller must never read an unreachable controller as a
  dead job.

Knows nothing of JupyterHub, spawners or kernels; imports only :mod:`dkrzspawner.units` and
:mod:`dkrzspawner.metrics`. The names below are the package's interface.
"""

from .runner import (
    BASE_ENV, PASSED_FROM_HUB, COMMAND_UMASK, SlurmError, SlurmUnreachable, SlurmTimeout, SlurmRejected,
    JobUnknown, OutputTooLarge, UnexpectedOutput, BadUserName, check_user_name, classify, parsed, Result,
    SlurmRunner, OUTPUT_TAIL_BYTES, printable, output_tail,
)

__all__ = [
    'BASE_ENV', 'PASSED_FROM_HUB', 'COMMAND_UMASK', 'SlurmError', 'SlurmUnreachable', 'SlurmTimeout',
    'SlurmRejected', 'JobUnknown', 'OutputTooLarge', 'UnexpectedOutput', 'BadUserName', 'check_user_name',
    'classify', 'parsed', 'Result', 'SlurmRunner', 'OUTPUT_TAIL_BYTES', 'printable', 'output_tail',
]
