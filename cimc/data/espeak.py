"""In-process speech synthesis with libespeak-ng through ctypes (library and data from ``espeakng-loader``).

Only what the synthetic corpus needs: pick a voice (``accent+variant``, e.g. ``en-us+m3``), set rate,
pitch and pitch range, seed espeak's own random generator, and collect the 16-bit samples it hands to
its synth callback (22,050 Hz, mono).

Why each batch runs in a forked child: libespeak-ng keeps hidden state between calls (function-static
flutter phase, wave phase, AGC, the Klatt generator), so the same text synthesized twice in one process
gives different samples. Every :meth:`EspeakEngine.synthesize` call therefore forks a child from a
parent whose engine has been initialised but has never spoken; the child synthesizes the batch in order
and streams the samples back through a pipe. The same batch thus always yields the same bytes, whatever
was synthesized before, and the callback never runs on two threads at once. A fork costs ~20 ms, so
batch a whole speaker's utterances into one call. Forking makes this POSIX-only (Linux, macOS).
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# espeak_AUDIO_OUTPUT, espeak_PARAMETER, espeak_POSITION_TYPE and flag values from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 3, 4, 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# espeak's default voice pitch when a variant file has no ``pitch`` line (voices.c: pitch_base 71<<12
# is ``pitch 80 118``).
DEFAULT_VARIANT_PITCH_HZ = (80.0, 118.0)
MIN_RATE_WPM, MAX_RATE_WPM = 80, 450


class EspeakError(RuntimeError):
    """libespeak-ng failed to load, initialise or synthesize."""


@dataclass(frozen=True)
class SynthRequest:
    """One utterance for espeak.

    :param text: plain text (UTF-8).
    :param voice: ``accent+variant`` name, e.g. ``en-us+f3``.
    :param rate_wpm: espeak speaking rate, words per minute (80-450).
    :param pitch: espeak pitch parameter 0-100 (50 = the variant's own; +50 doubles, -50 halves it).
    :param pitch_range: espeak intonation range 0-100 (0 = monotone, 50 = normal).
    :param word_gap: extra pause between words, units of 10 ms.
    :param seed: espeak's internal random seed (aspiration noise, Klatt voices).
    """

    text: str
    voice: str
    rate_wpm: int
    pitch: int
    pitch_range: int
    word_gap: int = 0
    seed: int = 0


def data_path() -> Path:
    """The ``espeak-ng-data`` folder shipped by ``espeakng-loader``."""
    import espeakng_loader

    return Path(espeakng_loader.get_data_path())


@functools.lru_cache(maxsize=None)
def variant_pitch_hz(variant: str) -> tuple[float, float]:
    """The ``pitch BASE TOP`` pair (Hz) of a voice variant file in ``espeak-ng-data/voices/!v``.

    Kept in file order: a few variants (``aunty``) give TOP < BASE, a falling range, and espeak honours it.

    :raises EspeakError: if the variant does not exist.
    """
    path = data_path() / "voices" / "!v" / variant
    if not path.is_file():
        raise EspeakError(f"espeak voice variant {variant!r} not found in {path.parent}")
    for line in path.read_text(errors="replace").splitlines():
        fields = line.split("//")[0].split()
        if len(fields) >= 3 and fields[0] == "pitch":
            return float(fields[1]), float(fields[2])
    return DEFAULT_VARIANT_PITCH_HZ


def median_pitch_hz(variant: str, pitch: int, pitch_range: int) -> float:
    """Approximate median F0 (Hz) of a sentence spoken by ``variant`` at espeak ``pitch`` and ``pitch_range``.

    espeak scales the variant's base (BASE - 9 Hz, voices.c) by 2 ** ((pitch - 50) / 50) (wavegen.c
    ``pitch_adjust_tab``) and adds the intonation contour, whose median sits ~70 % up the variant's range,
    scaled by ``0.4 + 0.6 * pitch_range / 50``. Fitted on 12 variants x 3 pitches x 3 ranges (error ~5 %).
    """
    base, top = variant_pitch_hz(variant)
    contour = 0.7 * (top - base) * (0.4 + 0.6 * pitch_range / 50)
    return (base - 9.0) * 2 ** ((pitch - 50) / 50) + 9.0 + contour


def pitch_parameter(target_hz: float, variant: str, pitch_range: int) -> int:
    """espeak pitch parameter (0-100) giving ``variant`` a median F0 near ``target_hz`` (inverse of
    :func:`median_pitch_hz`); the reachable base is half to double the variant's, so targets clamp."""
    base, top = variant_pitch_hz(variant)
    contour = 0.7 * (top - base) * (0.4 + 0.6 * pitch_range / 50)
    scale = max((target_hz - 9.0 - contour) / (base - 9.0), 1e-3)
    return int(np.clip(round(50.0 + 50.0 * np.log2(scale)), 0, 100))


class EspeakEngine:
    """libespeak-ng, initialised once per process in synchronous mode; use :func:`get_engine`."""

    def __init__(self) -> None:
        import espeakng_loader

        lib_path = espeakng_loader.get_library_path()
        try:
            self._lib = ctypes.CDLL(lib_path)
        except OSError as error:
            raise EspeakError(f"cannot load libespeak-ng from {lib_path}: {error}") from error
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sampling_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(data_path()).encode(), 0)
        if self.sampling_rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (code {self.sampling_rate}) with data {data_path()}")
        self._chunks: list[bytes] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: espeak holds a raw pointer to it
        lib.espeak_SetSynthCallback(self._callback)
        logger.debug("libespeak-ng %s ready at %d Hz", lib_path, self.sampling_rate)

    def _collect(self, samples, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(ctypes.string_at(samples, 2 * num_samples))
        return 0  # 0 = continue synthesis

    def _speak(self, request: SynthRequest) -> bytes:
        """Synthesize one request in this process (only ever called in a forked child)."""
        lib = self._lib
        if lib.espeak_SetVoiceByName(request.voice.encode()) != 0:
            raise EspeakError(f"espeak has no voice {request.voice!r}")
        rate = int(np.clip(request.rate_wpm, MIN_RATE_WPM, MAX_RATE_WPM))
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, request.pitch),
                             (_PARAM_RANGE, request.pitch_range), (_PARAM_WORDGAP, request.word_gap)):
            lib.espeak_SetParameter(param, int(value), 0)
        lib.espeak_ng_SetRandSeed(request.seed)
        self._chunks = []
        text = request.text.encode()
        status = lib.espeak_Synth(text, len(text) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise EspeakError(f"espeak_Synth failed (code {status}) on {request.text!r}")
        return b"".join(self._chunks)

    def synthesize(self, requests: list[SynthRequest]) -> list[np.ndarray]:
        """Synthesize ``requests`` in order, in a child forked from the pristine engine.

        :return: one int16 array (num_samples,) at :attr:`sampling_rate` per request.
        :raises EspeakError: if the child fails (its message is passed back).
        """
        if not hasattr(os, "fork"):
            raise EspeakError("synthesis forks a pristine engine per batch and needs os.fork (Linux, macOS)")
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns
            os.close(read_fd)
            code = 0
            with os.fdopen(write_fd, "wb") as pipe:
                try:
                    for request in requests:
                        audio = self._speak(request)
                        pipe.write(struct.pack("<q", len(audio)) + audio)
                except BaseException as error:  # noqa: BLE001 - report anything to the parent
                    message = f"{type(error).__name__}: {error}".encode()
                    pipe.write(struct.pack("<q", -len(message)) + message)
                    code = 1
            os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        return self._unpack(payload, len(requests), status)

    @staticmethod
    def _unpack(payload: bytes, expected: int, status: int) -> list[np.ndarray]:
        outputs, offset = [], 0
        while offset < len(payload):
            (size,) = struct.unpack_from("<q", payload, offset)
            offset += 8
            if size < 0:
                raise EspeakError(f"espeak child failed: {payload[offset:offset - size].decode(errors='replace')}")
            outputs.append(np.frombuffer(payload[offset:offset + size], dtype=np.int16).copy())
            offset += size
        if len(outputs) != expected or status != 0:
            raise EspeakError(f"espeak child returned {len(outputs)} of {expected} utterances (status {status})")
        return outputs


@functools.lru_cache(maxsize=1)
def get_engine() -> EspeakEngine:
    """The process-wide engine (libespeak-ng has global state: one per process)."""
    return EspeakEngine()
