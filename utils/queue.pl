#!/usr/bin/env perl
# Runs a Kaldi-style job array on Sun/Son of Grid Engine (SGE), with the interface of utils/run.pl:
#
#   utils/queue.pl [--max-jobs-run N] [--mem 4G] [--gpu 1] [--num-threads 4] [--time 2:00:00] \
#     [--config conf/queue.conf] [JOB=1:N] log/x.JOB.log command args...
#
# Writes the job script log/q/x.sh, submits it as one array (`qsub -t 1:N -tc M -sync y`) from the
# current directory with the current environment (-cwd -V), and when the array ends checks each task's
# exit status (log/q/x.status/done.<task>), exiting 1 with the failed logs named. Options map to
# -l mem_free=X,ram_free=X, -l gpu=N, -pe smp N, -l h_rt=T; --config FILE adds qsub options, one per
# line (e.g. -q all.q). Scheduler output goes to log/q/x.o<job>.<task>; the task's log is as run.pl's.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use JobArray qw(parse_args);

my $prog = 'queue.pl';
my $job = parse_args($prog, @ARGV);
my %o = %{ $job->{opts} };

JobArray::submit_array($prog, $job, '${SGE_TASK_ID:?not running as an SGE array task}', sub {
  my ($qdir, $name, $script) = @_;
  my @cmd = ('qsub', '-sync', 'y', '-N', $name, '-cwd', '-V', '-S', '/bin/bash', '-j', 'y',
             '-o', $qdir, '-t', "$job->{first}:$job->{last}");
  push @cmd, '-tc', $o{'max-jobs-run'} if defined $o{'max-jobs-run'};
  push @cmd, '-l', "mem_free=$o{mem},ram_free=$o{mem}" if defined $o{mem};
  push @cmd, '-pe', 'smp', $o{'num-threads'} if defined $o{'num-threads'};
  push @cmd, '-l', "gpu=$o{gpu}" if defined $o{gpu} && $o{gpu} ne '0';
  push @cmd, '-l', "h_rt=$o{time}" if defined $o{time};
  push @cmd, map { split ' ' } JobArray::config_lines($prog, $o{config});
  return (@cmd, $script);
});
exit 0;
