"""`cimc prepare-voxceleb`, `cimc import-kaldi-dir`, `cimc convert-m4a` (Stage 0)."""
from __future__ import annotations

import click

_DIR = click.Path(exists=True, file_okay=False)


@click.command("prepare-voxceleb")
@click.option("--voxceleb1", type=_DIR, required=True, help="VoxCeleb1 root: wav/idXXXXX/SESSION/NNNNN.wav.")
@click.option("--voxceleb2", type=_DIR, required=True, help="VoxCeleb2 root: dev/aac/... (m4a) or dev/wav/... (wav).")
@click.option("--output-dir", type=click.Path(file_okay=False), required=True, help="$data of the recipe.")
@click.option("--trials", type=click.Choice(["original", "cleaned"]), default="cleaned", show_default=True,
              help="VoxCeleb1-O list: original (37,720 trials) or cleaned (37,611).")
@click.option("--trials-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Local copy of that list (official format); else looked for in VOXCELEB1, else downloaded.")
@click.option("--skip-unknown-trials", is_flag=True, help="Drop (with a warning) trials naming missing audio.")
@click.option("--download", is_flag=True, help="First download and unpack both corpora into the two folders (Lhotse).")
@click.option("--nj", type=click.IntRange(min=1), default=1, show_default=True, help="Processes reading audio headers.")
def prepare_voxceleb_command(voxceleb1, voxceleb2, output_dir, trials, trials_file, skip_unknown_trials, download, nj):
    """Stage 0 for VoxCeleb: VoxCeleb2-dev as train, VoxCeleb1 test speakers + VoxCeleb1-O trials as test.

    Writes OUTPUT_DIR/manifests/{train,test}_{recordings,supervisions,cuts}.jsonl.gz,
    OUTPUT_DIR/kaldi/{train,test}/{wav.scp,utt2spk,spk2utt} and OUTPUT_DIR/trials.txt (Kaldi format).
    Utterance ids: id10270/x6uYqmx31kE/00001.wav -> id10270-x6uYqmx31kE-00001.

    Example: cimc prepare-voxceleb --voxceleb1 /corpora/VoxCeleb1 --voxceleb2 /corpora/VoxCeleb2
    --trials cleaned --output-dir data --nj 8
    """
    from cimc.data.voxceleb import prepare_voxceleb

    if download:
        from lhotse.recipes.voxceleb import download_voxceleb1, download_voxceleb2

        download_voxceleb1(voxceleb1)
        download_voxceleb2(voxceleb2)
    prepare_voxceleb(voxceleb1, voxceleb2, output_dir, trials, trials_file, nj, skip_unknown_trials)


@click.command("import-kaldi-dir")
@click.option("--data-dir", type=_DIR, required=True, help="Kaldi data dir: wav.scp, utt2spk, optional segments.")
@click.option("--name", required=True, help="Part name in the layout, e.g. train or test.")
@click.option("--output-dir", type=click.Path(file_okay=False), required=True, help="$data of the recipe.")
@click.option("--sampling-rate", type=int, default=None, help="Hz; required if wav.scp has pipes (`cmd |`).")
@click.option("--trials", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Kaldi trials over this part's utterances, checked and copied to OUTPUT_DIR/trials.txt.")
@click.option("--nj", type=click.IntRange(min=1), default=1, show_default=True, help="Processes reading audio headers.")
def import_kaldi_dir_command(data_dir, name, output_dir, sampling_rate, trials, nj):
    """Stage 0 for any corpus: a Kaldi data dir into the recipe's manifests and Kaldi dir.

    Example: cimc import-kaldi-dir --data-dir /corpora/mydata/train --name train --output-dir data
    """
    from cimc.data.kaldi_dir import import_kaldi_dir

    import_kaldi_dir(data_dir, name, output_dir, sampling_rate, trials, nj)


@click.command("convert-m4a")
@click.option("--input-dir", type=_DIR, required=True, help="e.g. /corpora/VoxCeleb2/dev/aac")
@click.option("--output-dir", type=click.Path(file_okay=False), required=True, help="e.g. /corpora/VoxCeleb2/dev/wav")
@click.option("--sampling-rate", type=int, default=16000, show_default=True)
@click.option("--nj", type=click.IntRange(min=1), default=4, show_default=True, help="Parallel ffmpeg processes.")
def convert_m4a_command(input_dir, output_dir, sampling_rate, nj):
    """Convert VoxCeleb2's m4a files to wav once with ffmpeg (same relative paths); reruns skip done files.

    Afterwards `cimc prepare-voxceleb` finds VOXCELEB2/dev/wav and no longer needs an m4a decoder.
    """
    from cimc.data.convert import convert_m4a

    _, _, failures = convert_m4a(input_dir, output_dir, nj, sampling_rate)
    if failures:
        raise click.ClickException(f"{len(failures)} file(s) failed to convert (see the warning above)")


COMMANDS: list = [prepare_voxceleb_command, import_kaldi_dir_command, convert_m4a_command]
