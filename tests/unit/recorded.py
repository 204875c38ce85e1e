"""What Slurm (and Lmod) answered on the local cluster, recorded once for every unit test.

The local cluster: Slurm 22.05.8, one node ``vm`` (8 CPUs, 16000 MB, gres gpu:2) in the partitions ``shared``
(the default, 7 days), ``prepost`` and ``gpu`` (12 hours); accounts ``bb1234`` (alice, carol; 6000 core-minutes)
and ``ab0000`` (bob, carol). Each text says which command printed it and in which state of the cluster. A few are
hand-written in the command's format (said so where they are); none is changed after recording.

Plain text only: imports nothing of dkrzspawner. :mod:`tests.unit.fakeslurm` answers commands with these.
"""

from __future__ import annotations

# -- scontrol show partition -o -----------------------------------------------------------------------------------
#: the three partitions as ci/slurm-up configures them
SCONTROL_PARTITIONS = """\
PartitionName=shared AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES QoS=N/A DefaultTime=01:00:00 DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED MaxTime=7-00:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=vm PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=8 TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=8,mem=16000M,node=1,billing=8,gres/gpu=2
PartitionName=prepost AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=N/A DefaultTime=01:00:00 DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED MaxTime=12:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=vm PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=8 TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=8,mem=16000M,node=1,billing=8,gres/gpu=2
PartitionName=gpu AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=NO QoS=N/A DefaultTime=01:00:00 DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO MaxNodes=UNLIMITED MaxTime=12:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=vm PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE PreemptMode=OFF State=UP TotalCPUs=8 TotalNodes=1 SelectTypeParameters=NONE JobDefaults=(null) DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=8,mem=16000M,node=1,billing=8,gres/gpu=2
"""
#: a site's partition with tighter limits and an account list (hand-written in scontrol's format)
SCONTROL_RESTRICTED = ("PartitionName=compute AllowGroups=ALL AllowAccounts=bb1234,cc0000 DenyAccounts=xx0000 "
                       "Default=NO DefaultTime=NONE Hidden=YES MaxNodes=4 MaxTime=UNLIMITED State=DOWN TotalCPUs=512 "
                       "TotalNodes=4 MaxCPUsPerNode=64 DefMemPerCPU=1920 MaxMemPerCPU=3840\n")

# -- scontrol show reservation -o ---------------------------------------------------------------------------------
#: a reservation for alice and carol (not yet begun) and one for account ab0000 (active, ended 2026-11-22)
RESERVATIONS = """\
ReservationName=dkrz_probe StartTime=2026-11-23T04:56:31 EndTime=2026-11-23T05:56:31 Duration=01:00:00 Nodes=vm NodeCnt=1 CoreCnt=1 Features=(null) PartitionName=shared Flags=SPEC_NODES   NodeName=vm CoreIDs=0 TRES=cpu=1 Users=alice,carol Groups=(null) Accounts=(null) Licenses=(null) State=INACTIVE BurstBuffer=(null) Watts=n/a MaxStartDelay=(null)
ReservationName=dkrz_probe2 StartTime=2026-11-22T04:56:31 EndTime=2026-11-22T05:06:31 Duration=00:10:00 Nodes=vm NodeCnt=1 CoreCnt=1 Features=(null) PartitionName=gpu Flags=SPEC_NODES TRES=cpu=1 Users=(null) Groups=(null) Accounts=ab0000 Licenses=(null) State=ACTIVE BurstBuffer=(null) Watts=n/a MaxStartDelay=(null)
"""
#: no reservation at all
NO_RESERVATIONS = "No reservations in the system\n"

# -- the two-node cluster (ci/slurm-nodes: node1 and node2, 8 CPUs, 16000 MB and gres gpu:2 each) -----------------
#: scontrol show partition shared -o
SCONTROL_TWO_NODES = ("PartitionName=shared AllowGroups=ALL AllowAccounts=ALL AllowQos=ALL AllocNodes=ALL Default=YES "
                      "QoS=N/A DefaultTime=01:00:00 DisableRootJobs=NO ExclusiveUser=NO GraceTime=0 Hidden=NO "
                      "MaxNodes=UNLIMITED MaxTime=7-00:00:00 MinNodes=0 LLN=NO MaxCPUsPerNode=UNLIMITED Nodes=node[1-2] "
                      "PriorityJobFactor=1 PriorityTier=1 RootOnly=NO ReqResv=NO OverSubscribe=NO OverTimeLimit=NONE "
                      "PreemptMode=OFF State=UP TotalCPUs=16 TotalNodes=2 SelectTypeParameters=NONE JobDefaults=(null) "
                      "DefMemPerNode=UNLIMITED MaxMemPerNode=UNLIMITED TRES=cpu=16,mem=32000M,node=2,billing=16,gres/gpu=4\n")
#: sinfo -h -N -p shared -O ... (the fields of SINFO_ARGV): node1 running a job of 1 core and 1000 MB, node2 idle
SINFO_TWO_NODES = """\
shared|node1|mix|1/7/0/8|16000|1000|gpu:2|gpu:0|
shared|node2|idle|0/8/0/8|16000|0|gpu:2|gpu:0|
"""

# -- sinfo -h -N -O PartitionName:|,NodeList:|,StateCompact:|,CPUsState:|,Memory:|,AllocMem:|,Gres:|,GresUsed:| -----
#: nothing running
SINFO_IDLE = """\
shared|vm|idle|0/8/0/8|16000|0|gpu:2|gpu:0|
prepost|vm|idle|0/8/0/8|16000|0|gpu:2|gpu:0|
gpu|vm|idle|0/8/0/8|16000|0|gpu:2|gpu:0|
"""
#: with alice's job of 3 cores, 3000 MB and one GPU running
SINFO_MIXED = """\
shared|vm|mix|3/5/0/8|16000|3000|gpu:2|gpu:1|
prepost|vm|mix|3/5/0/8|16000|3000|gpu:2|gpu:1|
gpu|vm|mix|3/5/0/8|16000|3000|gpu:2|gpu:1|
"""

# -- sacctmgr -n -P show user USER withassoc format=defaultaccount,account,partition -----------------------------
#: carol: default account bb1234, also ab0000
SACCTMGR_CAROL = "bb1234|bb1234|\nbb1234|ab0000|\n"
#: alice: bb1234 only
SACCTMGR_ALICE = "bb1234|bb1234|\n"

# -- sacctmgr -n -P show user withassoc format=user,defaultaccount,account,partition (every user) ----------------
#: the local cluster after ci/slurm-up: alice (bb1234), bob (ab0000), carol (bb1234, default, and ab0000), root
SACCTMGR_ALL = """\
alice|bb1234|bb1234|
bob|ab0000|ab0000|
carol|bb1234|bb1234|
carol|bb1234|ab0000|
root|root|bb1234|
root|root|ab0000|
root|root|root|
"""

# -- sacctmgr -n -P show assoc where account=bb1234,ab0000 format=Account,User,GrpTRESMins,GrpTRESRunMins ---------
#: after ci/slurm-up gave bb1234 GrpTRESMins=cpu=6000
SACCTMGR_LIMITS = """\
ab0000|||
ab0000|bob||
ab0000|carol||
ab0000|root||
bb1234||cpu=6000|
bb1234|alice||
bb1234|carol||
bb1234|root||
"""

# -- sacct -X -n -P -a -T -A bb1234,ab0000 -S ... -E now -o Account,User,CPUTimeRAW -----------------------------
#: the accounts' jobs since the period's start: alice 66, carol 34, bob 24 core-seconds
SACCT_USAGE = """\
bb1234|alice|63
bb1234|alice|3
ab0000|carol|16
bb1234|carol|18
bb1234|carol|0
ab0000|bob|24
"""

# -- squeue -h -t all -j IDS -o '%i|%T|%B|%r|%S|%e|%P|%u' (the watcher's status query) ----------------------------
#: alice's job 8 running on vm in gpu
SQUEUE_RUNNING = "8|RUNNING|vm|None|2026-11-22T03:01:06|2026-11-22T04:01:06|gpu|alice\n"
#: job 10 waiting: longer than prepost allows
SQUEUE_PENDING = "10|PENDING|n/a|PartitionTimeLimit|N/A|N/A|prepost|alice\n"
#: job 16 ended at its time limit, still in slurmctld's memory
SQUEUE_TIMEOUT = "16|TIMEOUT|vm|TimeLimit|2026-11-22T03:01:31|2026-11-22T03:02:59|shared|alice\n"


# -- squeue -h -j ID -o '%i|%T|%a|%P|%N|%C|%m|%b|%S|%e' (a Jupyter server's own job, asked as its user) ---------
#: alice's server job 930 running on vm in shared, no GPUs
SQUEUE_JOB_INFO = "930|RUNNING|bb1234|shared|vm|2|5000M|N/A|2026-12-01T22:00:00|2026-12-02T04:00:00\n"
#: a gpu job with one GPU (Slurm 22.05 prints its generic resources as gres:gpu:1)
SQUEUE_JOB_INFO_GPU = "932|RUNNING|bb1234|gpu|vm|2|3000M|gres:gpu:1|2026-12-01T23:06:07|2026-12-01T23:07:07\n"


def squeue_line(job_id, state="RUNNING", host="vm", reason="None"):
    """A line of the watcher's status query for ``job_id`` in ``state`` (the format of :data:`SQUEUE_RUNNING`)."""
    return f"{job_id}|{state}|{host}|{reason}|2026-11-22T03:01:06|2026-11-22T09:01:06|shared|alice\n"


# -- sacct -X -n -P -j IDS -o JobIDRaw,State,ExitCode,Elapsed,Timelimit (how the watcher's jobs ended) -----------
#: one job's line by its state; ``{id}`` is the job id
SACCT = {
    "COMPLETED": "{id}|COMPLETED|0:0|00:10:02|06:00:00\n",
    "CANCELLED": "{id}|CANCELLED by 1001|0:15|00:00:10|06:00:00\n",
    "TIMEOUT": "{id}|TIMEOUT|0:15|00:01:28|00:01:00\n",
    "OUT_OF_MEMORY": "{id}|OUT_OF_MEMORY|0:125|00:00:03|06:00:00\n",
    "FAILED": "{id}|FAILED|1:0|00:00:01|06:00:00\n",
    "RUNNING": "{id}|RUNNING|0:0|00:05:00|06:00:00\n",
    "PENDING": "{id}|PENDING|0:0|00:00:00|06:00:00\n",
}

# -- squeue -h -j ID -O NumTasks:|,cpus-per-task:|,NodeList: (an allocation's shape, for dkrz-kernel --job-id) ---
#: one task of one core on vm
SQUEUE_SHAPE = "1         |1         |vm                  \n"

# -- a kernel's allocation 77 (its squeue queries by format, and sacct -X -n -P -j 77 -o State) -------------------
#: squeue -h -j 77 -o '%T|%N|%C|%D|%L': running on vm, 2 CPUs, 1 node, 59 minutes left
SQUEUE_ALLOCATION = "RUNNING|vm|2|1|59:00"
#: squeue -h -t all -j 77 -o '%T|%r|%l': running, an hour's time limit
SQUEUE_ALLOCATION_STATE = "RUNNING|None|1:00:00"
#: squeue -h -j 77 -o '%T|%r|%S': waiting behind jobs of higher priority, no estimate yet
SQUEUE_ALLOCATION_PENDING = "PENDING|Priority|N/A"
#: squeue -h -j 77 -O NumTasks:|,cpus-per-task:|,NodeList:: one task of two cores on vm
SQUEUE_ALLOCATION_SHAPE = "1         |2         |vm                  "
#: sacct -X -n -P -j 77 -o State: cancelled by root
SACCT_CANCELLED = "CANCELLED by 0\n"

# -- sbatch --test-only (stderr) ---------------------------------------------------------------------------------
#: Slurm's estimate for a job of 2 cores in shared
TEST_ONLY = "sbatch: Job 30 to start at 2026-11-22T04:56:21 using 2 processors on nodes vm in partition shared\n"

# -- salloc (stderr) ----------------------------------------------------------------------------------------------
#: the allocation of a kernel granted at once
GRANTED = ["salloc: Granted job allocation 77"]

# -- lmod bash --terse avail (Lmod 8.6.19 writes the list to stderr) ----------------------------------------------
#: the local cluster's module tree
LMOD_AVAIL = """/var/lib/slurm-local/modulefiles:
broken/
broken/1.0
example/
example/1.0
example/2.0(default)
jobpython/
jobpython/3.11
tools/
tools/1.0
/usr/share/lmod/lmod/modulefiles:
"""
