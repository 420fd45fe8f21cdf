"""Every knob of the synthetic SPIRA-like dataset, declared once.

Acoustic markers of respiratory insufficiency that the "patient" class carries (each a range from a healthy
voice at severity 0 to an impaired one at severity 1):

- breathier voice: more turbulent aspiration noise, a lower harmonics-to-noise ratio (HNR) and a longer
  glottal open phase (Hillenbrand & Houde 1996 on breathy phonation);
- more jitter (cycle-to-cycle F0 perturbation) and shimmer (cycle-to-cycle amplitude perturbation), the
  perturbation measures reported to rise with impaired respiratory and laryngeal control (Teixeira et al.
  2013 on jitter/shimmer/HNR; Asiaee et al. 2020 on the voices of COVID-19 patients);
- shorter phonation: a sustained vowel broken into breath groups by pauses, each pause carrying audible
  inhalation noise (a reduced maximum phonation time is a standard clinical sign of poor respiratory
  support; SPIRA's premise, Casanova et al. 2021, is that such signs are audible in a phone recording);
- lower vocal intensity (reduced subglottal pressure).

Class overlap comes from a latent severity: controls draw it from Beta(2, 9), patients from Beta(9, 2), and
both classes share the same severity → acoustics map plus per-marker scatter, so a mild patient and a
hoarse control sound alike. Recording conditions (sample rate, channels, gain, background noise,
duration, speaker sex and F0) are drawn independently of the class.
"""

from __future__ import annotations

from dataclasses import dataclass

Range = tuple[float, float]


@dataclass(frozen=True)
class SynthParams:
    n: int = 240
    seed: int = 0
    patient_fraction: float = 0.5

    # latent severity ~ Beta(a, b) per class; the overlap of the two densities is the class overlap
    control_severity: Range = (2.0, 9.0)
    patient_severity: Range = (9.0, 2.0)
    # multiplicative log-normal scatter of each marker around its severity value (independent per marker)
    marker_scatter: float = 0.15

    # markers: (value at severity 0, value at severity 1)
    hnr_db: Range = (24.0, 5.0)  # harmonics-to-noise ratio of the glottal source
    jitter: Range = (0.004, 0.03)  # local jitter, mean |T_k - T_k+1| / mean T
    shimmer: Range = (0.025, 0.14)  # local shimmer, mean |A_k - A_k+1| / mean A
    open_quotient: Range = (0.55, 0.85)  # fraction of the glottal cycle the folds are open
    level_db: Range = (0.0, -8.0)  # voice level relative to a healthy speaker's
    breath_group_s: Range = (14.0, 1.3)  # phonation time before a breath (>= clip length: no pause)
    pause_s: Range = (0.25, 0.75)  # pause between breath groups: (short at low severity, long at high)
    inhalation_db: Range = (-30.0, -14.0)  # inhalation noise level in pauses, relative to the voice

    # speakers and tasks, independent of the class
    female_fraction: float = 0.5
    male_f0_hz: Range = (85.0, 150.0)
    female_f0_hz: Range = (165.0, 250.0)
    syllable_fraction: float = 0.25  # share of clips that are syllable trains ("pa-ta-ka") not vowels
    syllable_s: Range = (0.18, 0.3)

    # recording conditions, independent of the class
    durations_s: Range = (4.2, 9.5)  # most clips: >= 4 s, the pipeline's window
    short_fraction: float = 0.08  # a few clips as short as SPIRA's shortest real ones
    short_durations_s: Range = (2.7, 4.2)
    sample_rates: tuple[int, ...] = (48_000, 44_100)
    sample_rate_weights: tuple[float, ...] = (0.7, 0.3)
    stereo_fraction: float = 0.3
    voice_dbfs: Range = (-22.0, -16.0)  # healthy voice RMS before device gain
    device_gain_db: Range = (-4.0, 4.0)
    background_dbfs: Range = (-64.0, -48.0)  # room noise RMS, independent of the voice
    lead_silence_s: Range = (0.1, 0.45)

    # hospital noise clips (for SPIRA's noise augmentation)
    n_noise: int = 16
    noise_durations_s: Range = (4.0, 10.0)
    noise_sample_rate: int = 48_000
    noise_dbfs: Range = (-30.0, -14.0)

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"n must be >= 2 so both classes exist, got {self.n}")
        if not 0.0 < self.patient_fraction < 1.0:
            raise ValueError(f"patient_fraction must be in (0, 1), got {self.patient_fraction}")
        if self.n_noise < 0:
            raise ValueError(f"n_noise must be >= 0, got {self.n_noise}")
        if len(self.sample_rates) != len(self.sample_rate_weights):
            raise ValueError("sample_rates and sample_rate_weights must have the same length")
        if min(self.short_durations_s[0], self.durations_s[0]) <= 2 * self.lead_silence_s[1]:
            raise ValueError("clips must be longer than their leading and trailing silence")
