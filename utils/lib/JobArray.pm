# Shared by utils/run.pl, utils/slurm.pl and utils/queue.pl: the Kaldi job-array interface
#
#   <launcher> [options] [JOB=1:N] log/x.JOB.log command args...
#
# parsed once here, the per-task bash wrapper that writes the log (command, start time, output, end time
# and exit code), and the final check that names every failed log. The launchers differ only in how
# they start the N tasks.
package JobArray;
use strict;
use warnings;
use Cwd qw(getcwd);
use File::Basename qw(dirname basename);
use File::Path qw(make_path remove_tree);
use Exporter qw(import);
our @EXPORT_OK = qw(parse_args shell_join task_wrapper sh_quote report_and_exit usage_error count_cpus);

# Options every launcher accepts, with whether they take a value. run.pl ignores the resource ones.
my %KNOWN = map { $_ => 1 } qw(max-jobs-run mem gpu num-threads time config);

sub usage_error {
  my ($prog, $msg) = @_;
  print STDERR "$prog: $msg\n" if $msg;
  print STDERR <<"USAGE";
Usage: $prog [options] [JOB=1:N] <log-file> <command> [args...]
 e.g.: $prog --max-jobs-run 4 JOB=1:8 exp/log/feats.JOB.log cimc compute-feats --part JOB
Every occurrence of the variable name (JOB here) in the log name and the command is replaced by the
task index. Options: --max-jobs-run N (tasks at once), --mem X, --gpu N, --num-threads N, --time T,
--config FILE (extra scheduler options, one per line; slurm.pl / queue.pl only).
USAGE
  exit 1;
}

# Returns a hash: opts (name => value), var (e.g. "JOB" or undef), first, last, log, cmd (a shell string).
sub parse_args {
  my ($prog, @argv) = @_;
  my %opts;
  while (@argv && $argv[0] =~ /^--?([A-Za-z][-\w]*)(?:=(.*))?$/) {
    my ($name, $value) = ($1, $2);
    shift @argv;
    $name =~ s/_/-/g;
    usage_error($prog, "unknown option --$name") unless $KNOWN{$name};
    if (!defined $value) {
      usage_error($prog, "option --$name needs a value") unless @argv;
      $value = shift @argv;
    }
    $opts{$name} = $value;
  }
  my %job = (opts => \%opts);
  if (@argv && $argv[0] =~ /^([A-Za-z_]\w*)=(\d+)(?::(\d+))?$/) {
    my ($var, $first, $last) = ($1, $2, defined $3 ? $3 : $2);
    shift @argv;
    usage_error($prog, "empty job range $var=$first:$last (first > last)") if $first > $last;
    @job{qw(var first last)} = ($var, $first, $last);
  } elsif (@argv && $argv[0] =~ /^\w+=/ && $argv[0] !~ /\.log$/) {
    usage_error($prog, "bad job range '$argv[0]' (expected e.g. JOB=1:4)");
  } else {
    @job{qw(var first last)} = (undef, 1, 1);
  }
  usage_error($prog, "need a log file and a command") if @argv < 2;
  $job{log} = shift @argv;
  usage_error($prog, "the log file name '$job{log}' must contain $job{var} for a range of $job{var}")
    if defined $job{var} && $job{last} > $job{first} && index($job{log}, $job{var}) < 0;
  $job{cmd} = shell_join(@argv);
  if (exists $opts{'max-jobs-run'}) {
    usage_error($prog, "--max-jobs-run must be a positive integer, got '$opts{'max-jobs-run'}'")
      unless $opts{'max-jobs-run'} =~ /^[1-9]\d*$/;
  }
  return \%job;
}

# Kaldi's joining rule: a word without white space goes in bare (so an escaped `\|` or `\>` stays a
# shell operator); a word with spaces is quoted so it stays one argument. Unlike Kaldi's, a word with a
# quote or a backslash is quoted too: bare, the shell would eat them.
sub shell_join {
  my @words;
  for my $word (@_) {
    if ($word =~ /^[^\s'"\\]+$/) { push @words, $word; }
    else { push @words, sh_quote($word); }
  }
  return join(' ', @words);
}

sub sh_quote {
  my ($s) = @_;
  $s =~ s/'/'\\''/g;
  return "'$s'";
}

# Bash text that runs one task: it takes the index from $task_expr (e.g. '$SLURM_ARRAY_TASK_ID'),
# substitutes it for the job variable, writes the log and, if $marker_dir is given, leaves
# "<marker_dir>/done.<index>" holding the exit code (schedulers do not always report it reliably).
sub task_wrapper {
  my ($job, $task_expr, $marker_dir) = @_;
  my $var = defined $job->{var} ? $job->{var} : '';
  my $text = "set -u\n";
  $text .= "task=$task_expr\n";
  $text .= 'cmd=' . sh_quote($job->{cmd}) . "\n";
  $text .= 'log=' . sh_quote($job->{log}) . "\n";
  if ($var ne '') {
    $text .= "cmd=\${cmd//$var/\$task}\nlog=\${log//$var/\$task}\n";
  }
  $text .= <<'EOS';
mkdir -p "$(dirname "$log")"
start=$(date +%s)
{ printf '# %s\n' "$cmd"; echo "# Started at $(date) on $(hostname)"; } >"$log"
bash -c "$cmd" >>"$log" 2>&1
code=$?
{ echo "# Accounting: time=$(( $(date +%s) - start )) s"; echo "# Ended (code $code) at $(date)"; } >>"$log"
EOS
  if (defined $marker_dir) {
    $text .= 'echo $code >' . sh_quote($marker_dir) . "/done.\$task.tmp && mv " . sh_quote($marker_dir)
      . "/done.\$task.tmp " . sh_quote($marker_dir) . "/done.\$task\n";
  }
  $text .= "exit \$code\n";
  return $text;
}

sub log_name {
  my ($job, $task) = @_;
  my $log = $job->{log};
  $log =~ s/\Q$job->{var}\E/$task/g if defined $job->{var};
  return $log;
}

# $codes: task index => exit code (undef when the task left no exit status). Exits 1 naming the
# failed logs, or returns when all succeeded.
sub report_and_exit {
  my ($prog, $job, $codes) = @_;
  my @failed = grep { !defined $codes->{$_} || $codes->{$_} != 0 } ($job->{first} .. $job->{last});
  return if !@failed;
  my $total = $job->{last} - $job->{first} + 1;
  for my $task (@failed) {
    my $log = log_name($job, $task);
    my $why = defined $codes->{$task} ? "exit code $codes->{$task}" : "no exit status (killed or never ran)";
    print STDERR "$prog: task $task failed ($why); see $log\n";
  }
  print STDERR "$prog: " . scalar(@failed) . " / $total failed\n";
  exit 1;
}

sub count_cpus {
  my $n = `nproc 2>/dev/null`;
  chomp $n if defined $n;
  return (defined $n && $n =~ /^\d+$/ && $n > 0) ? $n : 1;
}

# Shared by slurm.pl and queue.pl: the folder for job scripts and markers, and the job script.
sub prepare_job_dir {
  my ($job, $prog) = @_;
  my $logdir = dirname(log_name($job, $job->{first}));
  my $qdir = "$logdir/q";
  make_path($qdir);
  my $name = basename($job->{log});
  $name =~ s/\.log$//;
  $name =~ s/\Q$job->{var}\E//g if defined $job->{var};
  $name =~ s/[^\w.-]+/_/g;
  $name =~ s/^[._]+|[._]+$//g;
  $name = 'job' if $name eq '';
  # Exit-status markers of a previous run of the same array must not count for this one.
  my $status_dir = "$qdir/$name.status";
  remove_tree($status_dir);
  make_path($status_dir);
  return ($qdir, $name, $status_dir);
}

sub write_job_script {
  my ($path, $job, $task_expr, $marker_dir, $directives) = @_;
  open(my $fh, '>', $path) or die "cannot write job script $path: $!\n";
  print $fh "#!/usr/bin/env bash\n";
  print $fh "$_\n" for @$directives;
  print $fh "# written by ", basename($0), "; the task index comes from the scheduler\n";
  print $fh 'cd ' . sh_quote(getcwd()) . "\n";
  print $fh task_wrapper($job, $task_expr, $marker_dir);
  close $fh;
  chmod 0755, $path;
}

# Wait (up to $grace seconds, for file systems that lag) for every task's marker; return index => code.
sub collect_markers {
  my ($job, $marker_dir, $grace) = @_;
  my %codes;
  my $deadline = time + $grace;
  while (1) {
    for my $task ($job->{first} .. $job->{last}) {
      next if defined $codes{$task};
      my $file = "$marker_dir/done.$task";
      if (open(my $fh, '<', $file)) {
        my $code = <$fh>;
        close $fh;
        chomp $code if defined $code;
        $codes{$task} = (defined $code && $code =~ /^\d+$/) ? $code : 255;
      }
    }
    last if keys(%codes) == $job->{last} - $job->{first} + 1 || time >= $deadline;
    sleep 1;
  }
  return \%codes;
}

# Shared tail of slurm.pl and queue.pl: write the job script, submit it (the submit command blocks until
# the array ends: sbatch --wait / qsub -sync y), then judge each task by its exit-status marker.
# $submit->($script) returns the submit command as a list. JOB_STATUS_WAIT (seconds, default 60) bounds
# the wait for markers after the scheduler returns, for shared file systems that show files late.
sub submit_array {
  my ($prog, $job, $task_expr, $submit_cmd) = @_;
  my ($qdir, $name, $status_dir) = prepare_job_dir($job);
  my $script = "$qdir/$name.sh";
  my @cmd = $submit_cmd->($qdir, $name, $script);
  write_job_script($script, $job, $task_expr, $status_dir, ['# submitted with: ' . shell_join(@cmd)]);
  my $submit_log = "$qdir/$name.submit.log";
  my $pid = fork();
  die "$prog: fork failed: $!\n" unless defined $pid;
  if ($pid == 0) {
    open(STDOUT, '>', $submit_log) or die "$prog: cannot write $submit_log: $!\n";
    open(STDERR, '>&', \*STDOUT);
    exec(@cmd) or die "$prog: cannot run $cmd[0]: $!\n";
  }
  waitpid($pid, 0);
  my $submit_code = $? >> 8;
  my $grace = $ENV{JOB_STATUS_WAIT} // 60;
  my $codes = collect_markers($job, $status_dir, $grace);
  if (!%$codes && $submit_code != 0) {
    print STDERR "$prog: $cmd[0] failed (exit code $submit_code) and no task ran; see $submit_log\n";
    exit 1;
  }
  report_and_exit($prog, $job, $codes);
}

# Extra scheduler options from --config FILE: one option per line, '#' comments.
sub config_lines {
  my ($prog, $file) = @_;
  return () unless defined $file;
  open(my $fh, '<', $file) or usage_error($prog, "cannot read --config file $file: $!");
  my @lines;
  while (my $line = <$fh>) {
    $line =~ s/#.*//;
    $line =~ s/^\s+|\s+$//g;
    push @lines, $line if $line ne '';
  }
  close $fh;
  return @lines;
}

1;
