#!/usr/bin/env perl
# Runs a Kaldi-style job array on this machine, at most --max-jobs-run tasks at once (default: the
# number of CPUs). Same interface as utils/slurm.pl and utils/queue.pl:
#
#   utils/run.pl [--max-jobs-run N] [--mem X --gpu N --num-threads N --time T (ignored)] \
#     [JOB=1:N] log/x.JOB.log command args...
#
# JOB is replaced by the task index in the log name and the command. Each log gets the command, the
# start time, the output (stdout and stderr), the run time and "# Ended (code C)". Exits 1, naming the
# failed logs, if any task fails. A shell operator passed as its own escaped word (`\|`, `\>`) stays an
# operator; a word with spaces stays one argument.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use JobArray qw(parse_args task_wrapper report_and_exit count_cpus);

my $prog = 'run.pl';
my $job = parse_args($prog, @ARGV);
my $max_jobs = $job->{opts}{'max-jobs-run'} // count_cpus();
my $wrapper = task_wrapper($job, '$1', undef);

my (%pid_task, %codes);
my @queue = ($job->{first} .. $job->{last});
while (@queue || %pid_task) {
  while (@queue && keys(%pid_task) < $max_jobs) {
    my $task = shift @queue;
    my $pid = fork();
    die "$prog: fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
      exec('bash', '-c', $wrapper, 'bash', $task) or die "$prog: cannot run bash: $!\n";
    }
    $pid_task{$pid} = $task;
  }
  my $pid = waitpid(-1, 0);
  last if $pid < 0;
  my $task = delete $pid_task{$pid};
  next unless defined $task;
  $codes{$task} = ($? & 127) ? 128 + ($? & 127) : $? >> 8;
}
report_and_exit($prog, $job, \%codes);
exit 0;
