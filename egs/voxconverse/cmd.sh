# How parallel jobs run. Local machine: run.pl. On a cluster, switch to slurm.pl or queue.pl (SGE);
# all three take the same `JOB=1:N log/x.JOB.log command` arguments.
export train_cmd="utils/run.pl"
# export train_cmd="utils/slurm.pl --mem 4G"
# export train_cmd="utils/queue.pl --mem 4G"
