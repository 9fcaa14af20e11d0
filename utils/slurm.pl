#!/usr/bin/env perl
# Runs a Kaldi-style job array on Slurm, with the interface of utils/run.pl:
#
#   utils/slurm.pl [--max-jobs-run N] [--mem 4G] [--gpu 1] [--num-threads 4] [--time 2:00:00] \
#     [--config conf/slurm.conf] [JOB=1:N] log/x.JOB.log command args...
#
# Writes the job script log/q/x.sh, submits it as one array (`sbatch --array=1-N%M --wait`) from the
# current directory with the current environment (--export=ALL), and when the array ends checks each
# task's exit status (log/q/x.status/done.<task>), exiting 1 with the failed logs named. Options map to
# --mem, --gres=gpu:N, --cpus-per-task, --time; --config FILE adds sbatch options, one per line
# (e.g. --partition=cpu). Scheduler output goes to log/q/x.<task>.out; the task's own log is as run.pl's.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use JobArray qw(parse_args);

my $prog = 'slurm.pl';
my $job = parse_args($prog, @ARGV);
my %o = %{ $job->{opts} };

JobArray::submit_array($prog, $job, '${SLURM_ARRAY_TASK_ID:?not running as a Slurm array task}', sub {
  my ($qdir, $name, $script) = @_;
  my $array = "$job->{first}-$job->{last}" . (defined $o{'max-jobs-run'} ? "%$o{'max-jobs-run'}" : '');
  my @cmd = ('sbatch', '--wait', "--job-name=$name", "--array=$array", '--export=ALL',
             "--output=$qdir/$name.%a.out");
  push @cmd, "--mem=$o{mem}" if defined $o{mem};
  push @cmd, "--cpus-per-task=$o{'num-threads'}" if defined $o{'num-threads'};
  push @cmd, "--gres=gpu:$o{gpu}" if defined $o{gpu} && $o{gpu} ne '0';
  push @cmd, "--time=$o{time}" if defined $o{time};
  push @cmd, map { split ' ' } JobArray::config_lines($prog, $o{config});
  return (@cmd, $script);
});
exit 0;
