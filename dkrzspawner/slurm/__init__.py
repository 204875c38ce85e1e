"""Everything that talks to Slurm about jobs by running its commands: the runner and the job commands.

- :mod:`.runner`: runs a command (an argument list, never a shell; as the user through sudo; with a timeout and
  bounded output) and types its failures (:class:`SlurmUnreachable`, :class:`SlurmRejected`,
  :class:`JobUnknown`, :class:`UnexpectedOutput`, ...). A caller must never read an unreachable controller as a
  dead job.
- :mod:`.jobs`: every job command, one function each (submit, test-only, find by tag, cancel, the watcher's
  squeue/queue order/sacct, a job's own view of itself, its final state, its output's tail) with its pure parser: the only place their
  argument lists are built.
- :mod:`.allocations`: the kernels' allocations (salloc, their steps).

Knows nothing of JupyterHub, spawners or kernels; imports only :mod:`dkrzspawner.units` and
:mod:`dkrzspawner.metrics`. The names below are the package's interface.
"""

from .jobs import (
    ENDED_STATES, JOB_INFO_FORMAT, MISSES_BEFORE_GONE, OUTPUT_TAIL_BYTES, QUEUE_FORMAT, SACCT_FORMAT, SQUEUE_FORMAT, TAGGED_FORMAT,
    JobInfo, JobStatus, accounted_states, cancel, final_state, find_tagged, job_info, job_states, output_tail,
    parse_estimate, parse_job_id, parse_job_info, parse_queue, parse_sacct, parse_squeue, parse_tagged, queue_order,
    set_time_limit, submit, test_only,
)
from .runner import (
    BASE_ENV, PASSED_FROM_HUB, COMMAND_UMASK, SlurmError, SlurmUnreachable, SlurmTimeout, SlurmRejected,
    JobUnknown, OutputTooLarge, UnexpectedOutput, BadUserName, check_user_name, classify, parsed, Result,
    SlurmRunner, printable,
)

__all__ = [
    'BASE_ENV', 'PASSED_FROM_HUB', 'COMMAND_UMASK', 'SlurmError', 'SlurmUnreachable', 'SlurmTimeout',
    'SlurmRejected', 'JobUnknown', 'OutputTooLarge', 'UnexpectedOutput', 'BadUserName', 'check_user_name',
    'classify', 'parsed', 'Result', 'SlurmRunner', 'printable',
    'ENDED_STATES', 'MISSES_BEFORE_GONE', 'OUTPUT_TAIL_BYTES', 'QUEUE_FORMAT', 'SACCT_FORMAT', 'SQUEUE_FORMAT',
    'TAGGED_FORMAT', 'JOB_INFO_FORMAT', 'JobInfo', 'JobStatus', 'accounted_states', 'cancel', 'final_state',
    'find_tagged', 'job_info', 'job_states', 'output_tail', 'parse_estimate', 'parse_job_id', 'parse_job_info',
    'parse_queue', 'parse_sacct', 'parse_squeue', 'parse_tagged',
    'queue_order', 'set_time_limit', 'submit', 'test_only',
]
