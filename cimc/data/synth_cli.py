"""`cimc synth-corpus`: the embedded synthetic multi-speaker corpus (library: :mod:`cimc.data.synth`)."""
from __future__ import annotations

import click


@click.command("synth-corpus")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False),
              help="Corpus folder (the recipe's data/): wav/, manifests/, kaldi/, trials.txt are written here.")
@click.option("--num-speakers", type=click.IntRange(min=1), help="Training speakers [default: 40].")
@click.option("--utts-per-speaker", type=click.IntRange(min=1),
              help="Utterances per speaker, training and test [default: 20].")
@click.option("--num-test-speakers", type=click.IntRange(min=0),
              help="Test speakers, disjoint from the training ones; trials pair their utterances "
                   "(0: no test set) [default: 10].")
@click.option("--seed", type=int, help="Same seed and sizes give the same bytes [default: 0].")
@click.option("--nj", "num_jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Parallel worker processes; the output is the same for any value.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Optional YAML of SynthConfig fields (durations, SNR, RIR, pitch ranges ...); flags win.")
@click.argument("overrides", nargs=-1)
def synth_corpus(output_dir: str, num_speakers: int | None, utts_per_speaker: int | None,
                 num_test_speakers: int | None, seed: int | None, num_jobs: int, config_path: str | None,
                 overrides: tuple[str, ...]) -> None:
    """Synthesize a multi-speaker English corpus with libespeak-ng and write the recipes' data layout.

    Each speaker is a fixed voice (espeak variant, accent, formant factor 0.85-1.2, median pitch
    80-250 Hz, intonation range, rate); each utterance (2-6 s) gets a fresh sentence, a random channel,
    noise at 5-30 dB SNR and sometimes reverberation. OVERRIDES are SynthConfig `key=value` pairs,
    e.g. `snr_db=[0,20]`. Prints a summary table. Writes under OUTPUT_DIR:

    \b
      wav/<spk>/<utt>.wav                 16 kHz, 16-bit
      manifests/{train,test}_{recordings,supervisions,cuts}.jsonl.gz
      kaldi/{train,test}/{wav.scp,utt2spk,spk2utt}
      trials.txt                          test pairs: enroll test target|nontarget
      speakers.tsv synth_config.yaml summary.txt

    \b
    Example:
      cimc synth-corpus --output-dir data --num-speakers 200 --utts-per-speaker 30 --nj 4
    """
    from cimc.config import load_config
    from cimc.data.synth import SynthConfig, synthesize_corpus

    flags = {"num_speakers": num_speakers, "utts_per_speaker": utts_per_speaker,
             "num_test_speakers": num_test_speakers, "seed": seed}
    sizes = [f"{key}={value}" for key, value in flags.items() if value is not None]
    try:
        config = load_config(SynthConfig, config_path, [*overrides, *sizes])
    except (ValueError, TypeError) as error:
        raise click.UsageError(str(error)) from error
    click.echo(synthesize_corpus(config, output_dir, num_jobs), nl=False)


COMMANDS: list = [synth_corpus]
