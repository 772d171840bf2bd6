"""What a simulated OpenWebRX receiver computes from the physical model (pure, no network).

An OpenWebRX receiver is an SDR sampling a whole band (a *profile*: centre and
sample rate, e.g. 2.4 MHz around 145 MHz). Its listeners get:

* spectrum frames: the periodogram of ``fft_size`` samples of the band, in dB
  relative to the receiver's full scale (a full-scale tone reads 0 dB);
* audio: the listener's channel (dial frequency, passband) filtered,
  demodulated and levelled by an AGC, so its level says nothing of the signal;
* an S-meter: the mean power in the channel's passband, linear, in the
  receiver's own full-scale units (``10 log10`` of it is what the UI shows).

All three are rendered with ``physics.render_receiver_iq`` of the same scenario
as the KiwiSDR receivers, at the rate each needs (the profile's for spectra,
the audio rate for the channel), so the two kinds of receiver hear one world.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import scipy.fft
from scipy import signal

from heimdall.simulator.adpcm_encoder import encode as adpcm_encode
from heimdall.simulator.physics import render_receiver_iq
from heimdall.simulator.scenario import ReceiverSettings, Scenario

FRAME_FFT = 1
FRAME_AUDIO = 2
#: ADPCM spectrum frames start with this many copies of the first value (the codec settles).
FFT_PADDING = 10
FFT_ADPCM_SCALE = 100.0
#: Channel filter length at the audio rate: about 0.3 kHz transition at 12 kHz.
CHANNEL_FILTER_TAPS = 129
#: The AGC levels audio to this RMS (full scale 1.0), moving a third of the way per message.
AGC_TARGET_RMS = 0.25
AGC_SMOOTHING = 1.0 / 3.0
DEMODULATORS = frozenset({"usb", "lsb", "am", "nfm"})


@dataclass(frozen=True, slots=True)
class SdrProfile:
    """A band the simulated SDR can be switched to."""

    sdr_id: str
    sdr_name: str
    profile_id: str
    name: str
    center_frequency_hz: float
    sample_rate_hz: float

    @property
    def id(self) -> str:
        return f"{self.sdr_id}|{self.profile_id}"

    @property
    def display_name(self) -> str:
        return f"{self.sdr_name} {self.name}"


#: Every simulated OpenWebRX receiver: an RTL-SDR with a 2 m and a 70 cm profile.
PROFILES = (
    SdrProfile("rtlsdr", "RTL-SDR", "2m", "2 m", 145_000_000.0, 2_400_000.0),
    SdrProfile("rtlsdr", "RTL-SDR", "70cm", "70 cm", 433_500_000.0, 2_400_000.0),
)


@dataclass(frozen=True, slots=True)
class OpenWebRXOptions:
    """Stream formats and rates of the simulated OpenWebRX receivers.

    The defaults are OpenWebRX's own: 4096-bin spectra at 9 frames per second,
    ADPCM audio and spectra. The S-meter is reported every ``smeter_every``
    audio messages (2 x 1024 samples at 12 kHz: about 6 readings a second).
    """

    fft_size: int = 4096
    fft_fps: float = 9.0
    audio_compression: str = "adpcm"
    fft_compression: str = "adpcm"
    audio_chunk_samples: int = 1024
    smeter_every: int = 2
    version: str = "v1.2.2"


@lru_cache(maxsize=8)
def _hann(length: int) -> npt.NDArray[np.float64]:
    window = signal.get_window("hann", length)
    window.flags.writeable = False
    return window


def spectrum_frame_db(
    scenario: Scenario,
    receiver: ReceiverSettings,
    profile: SdrProfile,
    time_ns: int,
    fft_size: int,
) -> npt.NDArray[np.float32]:
    """One spectrum frame: dB per bin, increasing frequency, 0 dB = a full-scale tone.

    Example:
        >>> from heimdall.simulator.scenario import load_scenario
        >>> scenario = load_scenario()
        >>> frame = spectrum_frame_db(
        ...     scenario, scenario.receiver("torino"), PROFILES[0], 1_700_000_000 * 10**9, 4096)
        >>> frame.shape, frame.dtype, bool(frame.max() - np.median(frame) > 10)  # signal above noise
        ((4096,), dtype('float32'), True)
    """
    band = receiver.model_copy(update={"sample_rate_hz": profile.sample_rate_hz})
    iq = render_receiver_iq(scenario, band, time_ns, fft_size, profile.center_frequency_hz).samples
    window = _hann(fft_size)
    spectrum = scipy.fft.fftshift(scipy.fft.fft(iq * window))
    power = (spectrum.real**2 + spectrum.imag**2) / np.sum(window) ** 2
    return (10.0 * np.log10(np.maximum(power, 1e-20))).astype(np.float32)


def fft_frame(values_db: npt.NDArray[np.float32], compression: str) -> bytes:
    """The binary spectrum frame: type byte, then ADPCM (dB x 100, padded) or float32."""
    if compression == "adpcm":
        scaled = np.clip(np.round(values_db.astype(np.float64) * FFT_ADPCM_SCALE), -32768, 32767)
        padded = np.concatenate((np.full(FFT_PADDING, scaled[0]), scaled)).astype(np.int16)
        payload, _ = adpcm_encode(padded)  # every frame from the zero state
        return bytes([FRAME_FFT]) + payload
    return bytes([FRAME_FFT]) + values_db.astype("<f4").tobytes()


@lru_cache(maxsize=32)
def channel_filter(
    sample_rate_hz: float, low_cut_hz: float, high_cut_hz: float
) -> npt.NDArray[np.complex128]:
    """Complex band-pass taps passing low..high Hz of the baseband (a low-pass, shifted)."""
    half_width_hz = max((high_cut_hz - low_cut_hz) / 2, 1.0)
    centre_hz = (high_cut_hz + low_cut_hz) / 2
    lowpass = signal.firwin(CHANNEL_FILTER_TAPS, half_width_hz, fs=sample_rate_hz)
    n = np.arange(CHANNEL_FILTER_TAPS) - (CHANNEL_FILTER_TAPS - 1) / 2
    taps = lowpass * np.exp(2j * np.pi * centre_hz * n / sample_rate_hz)
    taps.flags.writeable = False
    return taps


class ChannelDemodulator:
    """One listener's audio chain: passband filter, demodulator, AGC; and the S-meter power.

    Stateful across messages (filter memory, FM phase, AGC gain), like the real
    chain, so consecutive chunks join without clicks.

    Example:
        >>> n = np.arange(12_000)
        >>> tone = np.exp(2j * np.pi * 1_000.0 * n / 12_000.0).astype(np.complex64)
        >>> audio, power = ChannelDemodulator(12_000.0, "usb", 300.0, 3_000.0).process(tone)
        >>> spectrum = np.abs(np.fft.rfft(audio))
        >>> int(np.argmax(spectrum)), round(power, 1)  # a 1 kHz tone, its power in the passband
        (1000, 1.0)
    """

    def __init__(
        self, sample_rate_hz: float, demodulator: str, low_cut_hz: float, high_cut_hz: float
    ) -> None:
        if demodulator not in DEMODULATORS:
            raise ValueError(f"demodulator {demodulator!r} is not one of {sorted(DEMODULATORS)}")
        if not low_cut_hz < high_cut_hz:
            raise ValueError("low_cut_hz must be below high_cut_hz")
        self.demodulator = demodulator
        self.taps = channel_filter(sample_rate_hz, low_cut_hz, high_cut_hz)
        self.filter_state = np.zeros(len(self.taps) - 1, dtype=np.complex128)
        self.previous_sample = 1.0 + 0.0j
        self.log_gain: float | None = None

    def process(self, iq: npt.NDArray[np.complex64]) -> tuple[npt.NDArray[np.float32], float]:
        """Audio (float32, full scale 1.0) and mean passband power (full-scale units)."""
        filtered, self.filter_state = signal.lfilter(self.taps, 1.0, iq, zi=self.filter_state)
        power = float(np.mean(filtered.real**2 + filtered.imag**2))
        if self.demodulator in ("usb", "lsb"):
            audio = filtered.real
        elif self.demodulator == "am":
            envelope = np.abs(filtered)
            audio = envelope - np.mean(envelope)
        else:
            previous = np.concatenate(([self.previous_sample], filtered[:-1]))
            audio = np.angle(filtered * np.conj(previous)) / np.pi
        if len(filtered):
            self.previous_sample = complex(filtered[-1])
        rms = float(np.sqrt(np.mean(audio**2))) if len(audio) else 0.0
        wanted = float(np.log(AGC_TARGET_RMS / max(rms, 1e-9)))
        self.log_gain = (
            wanted
            if self.log_gain is None
            else self.log_gain + AGC_SMOOTHING * (wanted - self.log_gain)
        )
        levelled = np.clip(audio * np.exp(self.log_gain), -1.0, 1.0)
        return levelled.astype(np.float32), power


def audio_frame(
    audio: npt.NDArray[np.float32], compression: str, state: tuple[int, int]
) -> tuple[bytes, tuple[int, int]]:
    """The binary audio frame (type byte, then int16 or ADPCM) and the codec state after it."""
    samples = np.clip(np.round(audio.astype(np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    if compression == "adpcm":
        payload, state = adpcm_encode(samples, state)
        return bytes([FRAME_AUDIO]) + payload, state
    return bytes([FRAME_AUDIO]) + samples.astype("<i2").tobytes(), state


def render_channel(
    scenario: Scenario,
    receiver: ReceiverSettings,
    start_time_ns: int,
    n_samples: int,
    dial_frequency_hz: float,
    sample_rate_hz: float,
) -> npt.NDArray[np.complex64]:
    """The listener's channel as complex baseband around the dial, at the audio rate."""
    channel = receiver.model_copy(update={"sample_rate_hz": sample_rate_hz})
    return render_receiver_iq(
        scenario, channel, start_time_ns, n_samples, dial_frequency_hz
    ).samples
