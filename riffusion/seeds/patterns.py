"""The built-in patterns: loops of clearly different feel, written as step-grid scores.

Each pattern has a default tempo and key; it renders at any tempo from 60 to 180 BPM, any key and
any number of beats (the grids repeat bar by bar). See score.py for the grid notation.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from riffusion.audio import Audio
from riffusion.errors import RiffusionError
from riffusion.seeds.harmony import Key
from riffusion.seeds.score import Score, render_score


@dataclass(frozen=True)
class Pattern:
    """A loop recipe.

    Attributes:
        id: name, as used on the command line.
        description: one line on its feel.
        bpm: default tempo, BPM.
        beats_per_bar: meter numerator (over a quarter note).
        key: default key, e.g. "A minor".
        steps_per_beat: grid resolution (4: sixteenths, 3: triplet eighths).
        swing: delay of off steps, fraction of a step.
        progression: scale degree of each bar's chord, repeating.
        reverb: wet level of the circular reverb (0 dry).
        compose: adds the pattern's parts to a Score.
    """

    id: str
    description: str
    bpm: float
    beats_per_bar: int
    key: str
    steps_per_beat: int
    swing: float
    progression: tuple[int, ...]
    reverb: float
    compose: Callable[[Score], None]

    @property
    def meter(self) -> str:
        return f"{self.beats_per_bar}/4"


def _og_beat(score: Score) -> None:
    score.hits("kick", "X.......X.x.....")
    score.hits("snare", "....X.......X...")
    score.hits("hat", "X.x.X.x.X.x.X.x.", gain=0.8)
    score.line("bass", "1.....1.1.1.....", octave=1, gain=0.7)


def _agile(score: Score) -> None:
    score.hits("kick", "X.....x...X..x..")
    score.hits("snare", "....X..o.o..X..o")
    score.hits("hat", "XoxoXoxoXoxoXoxo", gain=0.6)
    score.line("bass", "1.18..1.1.5.8.5.", octave=1, gain=0.7)
    score.line("lead", "5--3-5-8-7-5-3--", octave=4, gain=0.45)


def _marim(score: Score) -> None:
    score.line("marimba", "1.35.8.53.1.5.3.", octave=4, gain=0.8)
    score.line("marimba", "1.......5.......", octave=3, gain=0.6)
    score.hits("kick", "x.......x.......", gain=0.5)
    score.hits("rim", "....x.......x...", gain=0.4)
    score.hits("shaker", "x.o.x.o.x.o.x.o.", gain=0.3)


def _motorway(score: Score) -> None:
    score.hits("kick", "X...X...X...X...")
    score.hits("snare", "....X.......X...", gain=0.8)
    score.hits("hat", "x.x.x.x.x.x.x.x.", gain=0.6)
    score.hits("open_hat", "..o...o...o...o.", gain=0.4)
    # Triads in the bass register, struck on every eighth note: the engine under the beat.
    score.chords("bass", "X-x-X-x-X-x-X-x-", octave=2, gain=0.45)


def _vibes(score: Score) -> None:
    score.hits("kick", "X.........x.....", gain=0.8)
    score.hits("rim", "........x.......", gain=0.5)
    score.hits("hat", "....o.......o...", gain=0.5)
    score.chords("vibraphone", "x-------..x-----", octave=4, size=4, gain=0.45)
    score.line("vibraphone", "5.......3...2...", octave=5, gain=0.5)


def _four_on_the_floor(score: Score) -> None:
    score.hits("kick", "X...X...X...X...")
    score.hits("clap", "....X.......X...", gain=0.8)
    score.hits("open_hat", "..x...x...x...x.", gain=0.7)
    score.hits("hat", "o.o.o.o.o.o.o.o.", gain=0.6)
    score.line("bass", "..1...1...1...18", octave=1, gain=0.7)
    score.chords("keys", "...x-.....x-....", octave=4, gain=0.5)


def _halftime_hiphop(score: Score) -> None:
    score.hits("kick", "X......x..X.....X......x..X...x.")
    score.hits("snare", "........X...............X.....o.")
    score.hits("hat", "X.xoX.x.X.xoX.x.", gain=0.7)
    score.line("bass", "1-----.1--......1-----.1--....5.", octave=1, gain=0.8)
    score.chords("keys", "x-------..x-----", octave=4, size=4, gain=0.45)


def _swing(score: Score) -> None:
    score.hits("ride", "X..X.xX..X.x")
    score.hits("hat", "...x.....x..", gain=0.5)
    score.hits("kick", "o..o..o..o..", gain=0.6)
    score.line("bass", "1--3--5--6--", octave=2, gain=0.8)
    score.chords("keys", "......x-.x-.", octave=4, size=4, gain=0.45)


def _breakbeat(score: Score) -> None:
    score.hits("kick", "X.x.......xX....X.x.......x.....")
    score.hits("snare", "....X..o.o..X..o....X..o.o....X.")
    score.hits("hat", "X.x.X.x.X.x.X.x.", gain=0.6)
    score.line("bass", "1.....1...1.....1.....1...3..5..", octave=1, gain=0.7)


def _bossa(score: Score) -> None:
    score.hits("kick", "X..xX..xX..xX..x", gain=0.6)
    # Bossa clave over two bars.
    score.hits("rim", "X..X..X...X..X..X..X...X..X.....", gain=0.7)
    score.hits("shaker", "XoxoXoxoXoxoXoxo", gain=0.5)
    score.line("bass", "1-.5-.5-1-.5-.5-", octave=2, gain=0.8)
    score.chords("pluck", "x..x..x...x..x..", octave=3, size=4, gain=0.5)


def _ambient_pad(score: Score) -> None:
    score.chords("pad", "x---------------", octave=3, size=4, gain=1.0)
    # A soft pulse and shaker on the beat keep the tempo audible under the swells.
    score.hits("low_tom", "x...o...x...o...", gain=0.5)
    score.hits("shaker", "x...x...x...x...", gain=0.35)
    score.line("pluck", "5.......3.......", octave=5, gain=0.25)


def _arpeggio(score: Score) -> None:
    score.line("pluck", "1358135813581358", octave=4, gain=0.7)
    score.chords("pad", "x---------------", octave=3, gain=0.35)
    score.hits("kick", "x...x...x...x...", gain=0.7)
    score.hits("hat", "..o...o...o...o.", gain=0.5)


def _sparse_percussion(score: Score) -> None:
    score.hits("shaker", "x...x...x...x...", gain=0.5)
    score.hits("low_tom", "X.........x.....X.........x..o..")
    score.hits("conga", "......x.....x.o.......x......x..", gain=0.7)
    score.hits("rim", "....x.......x.......x.......x...", gain=0.5)


def _marimba_waltz(score: Score) -> None:
    score.line("bass", "1-----------", octave=2, gain=0.7)
    score.chords("marimba", "....x...x...", octave=4, gain=0.6)
    score.line("marimba", "5...3...1...", octave=5, gain=0.7)
    score.hits("shaker", "X...x...x...", gain=0.35)


PATTERNS: dict[str, Pattern] = {
    pattern.id: pattern
    for pattern in (
        Pattern(
            id="og_beat",
            description="Pop/rock beat: kick on 1 and 3, snare on 2 and 4, eighth hats, bass",
            bpm=93.75,
            beats_per_bar=4,
            key="E minor",
            steps_per_beat=4,
            swing=0.0,
            progression=(1, 6),
            reverb=0.1,
            compose=_og_beat,
        ),
        # agile, marim, motorway and vibes are our own patterns under the ids the original web
        # app offers (its seed images were files; these are drawn in the spirit of the names).
        Pattern(
            id="agile",
            description="Busy breakbeat in sixteenths with a bouncing bass and a square-wave lead",
            bpm=140.625,
            beats_per_bar=4,
            key="A minor",
            steps_per_beat=4,
            swing=0.0,
            progression=(1, 6, 7),
            reverb=0.1,
            compose=_agile,
        ),
        Pattern(
            id="marim",
            description="Marimba melody in eighths and sixteenths over a soft kick, rim and shaker",
            bpm=93.75,
            beats_per_bar=4,
            key="D major",
            steps_per_beat=4,
            swing=0.0,
            progression=(1, 4),
            reverb=0.2,
            compose=_marim,
        ),
        Pattern(
            id="motorway",
            description="Driving rock beat, kick on every beat, eighth-note bass chords",
            bpm=140.625,
            beats_per_bar=4,
            key="E minor",
            steps_per_beat=4,
            swing=0.0,
            progression=(1, 7, 6),
            reverb=0.1,
            compose=_motorway,
        ),
        Pattern(
            id="vibes",
            description="Sparse beat under ringing vibraphone seventh chords and a few notes",
            bpm=93.75,
            beats_per_bar=4,
            key="F major",
            steps_per_beat=4,
            swing=0.0,
            progression=(2, 5),
            reverb=0.3,
            compose=_vibes,
        ),
        Pattern(
            id="four_on_the_floor",
            description="House: kick on every beat, claps on 2 and 4, off-beat hats and bass",
            bpm=125.0,
            beats_per_bar=4,
            key="A minor",
            steps_per_beat=4,
            swing=0.0,
            progression=(1, 6, 3, 7),
            reverb=0.15,
            compose=_four_on_the_floor,
        ),
        Pattern(
            id="halftime_hiphop",
            description="Half-time boom bap: snare on 3, swung hats, sub bass, electric piano",
            bpm=90.0,
            beats_per_bar=4,
            key="D minor",
            steps_per_beat=4,
            swing=0.15,
            progression=(1, 4),
            reverb=0.15,
            compose=_halftime_hiphop,
        ),
        Pattern(
            id="swing",
            description="Jazz swing: triplet ride, hi-hat on 2 and 4, walking bass, comping",
            bpm=140.0,
            beats_per_bar=4,
            key="F major",
            steps_per_beat=3,
            swing=0.0,
            progression=(2, 5, 1, 6),
            reverb=0.2,
            compose=_swing,
        ),
        Pattern(
            id="breakbeat",
            description="Syncopated breakbeat with ghost snares, sixteenth hats and bass stabs",
            bpm=135.0,
            beats_per_bar=4,
            key="G minor",
            steps_per_beat=4,
            swing=0.0,
            progression=(1, 1, 6, 7),
            reverb=0.1,
            compose=_breakbeat,
        ),
        Pattern(
            id="bossa",
            description="Bossa nova: rim clave, shaker, root-fifth bass, plucked seventh chords",
            bpm=125.0,
            beats_per_bar=4,
            key="D major",
            steps_per_beat=4,
            swing=0.0,
            progression=(1, 2),
            reverb=0.2,
            compose=_bossa,
        ),
        Pattern(
            id="ambient_pad",
            description="Slow ambient pad of seventh chords over a soft pulse, drenched in reverb",
            bpm=70.0,
            beats_per_bar=4,
            key="C major",
            steps_per_beat=4,
            swing=0.0,
            progression=(1, 6, 4, 5),
            reverb=0.5,
            compose=_ambient_pad,
        ),
        Pattern(
            id="arpeggio",
            description="Arpeggiated synth in sixteenths over a pad, with a steady kick",
            bpm=120.0,
            beats_per_bar=4,
            key="A minor",
            steps_per_beat=4,
            swing=0.0,
            progression=(1, 6, 4, 5),
            reverb=0.25,
            compose=_arpeggio,
        ),
        Pattern(
            id="sparse_percussion",
            description="Sparse percussion: toms, congas and rim clicks over a quiet shaker",
            bpm=100.0,
            beats_per_bar=4,
            key="C major",
            steps_per_beat=4,
            swing=0.0,
            progression=(1,),
            reverb=0.3,
            compose=_sparse_percussion,
        ),
        Pattern(
            id="marimba_waltz",
            description="Waltz in 3/4: bass on one, marimba chords on two and three, a melody",
            bpm=140.0,
            beats_per_bar=3,
            key="G major",
            steps_per_beat=4,
            swing=0.0,
            progression=(1, 4, 5, 1),
            reverb=0.2,
            compose=_marimba_waltz,
        ),
    )
}


def get_pattern(pattern_id: str) -> Pattern:
    """The built-in pattern named pattern_id, else RiffusionError listing the names."""
    try:
        return PATTERNS[pattern_id]
    except KeyError:
        raise RiffusionError(
            f"no built-in pattern {pattern_id!r}; choose one of {', '.join(PATTERNS)}"
        ) from None


def render_pattern(
    pattern: Pattern,
    beats: int,
    num_samples: int,
    key: Key | None = None,
    seed: int = 0,
    sample_rate: int = 44100,
) -> Audio:
    """One period of the pattern's loop: beats beats in num_samples samples, mono, peak 0.9.

    The tempo is beats * 60 * sample_rate / num_samples BPM. The same seed gives the same drum
    noise and velocity variations at every tempo.
    """
    if not 0 <= seed < 2**32:
        raise RiffusionError(f"the seed must be between 0 and 2**32 - 1, got {seed}")
    score = Score(
        Key.parse(pattern.key) if key is None else key,
        pattern.beats_per_bar,
        beats,
        pattern.steps_per_beat,
        pattern.progression,
        pattern.swing,
    )
    pattern.compose(score)
    rng = np.random.default_rng([seed, zlib.crc32(pattern.id.encode())])
    samples = render_score(score, num_samples, sample_rate, rng, reverb_wet=pattern.reverb)
    return Audio(samples.astype(np.float32), sample_rate)
