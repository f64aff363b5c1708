// Prompt ideas for the suggestion chips and the dice. Short, concrete descriptions of a sound
// work best with the riffusion model: an instrument or genre plus a mood or a place.

export const SUGGESTIONS = [
  "lo-fi beat for the holidays",
  "jazz with piano",
  "church bells on sunday",
  "funky saxophone solo",
  "acoustic folk fiddle",
  "techno at the warehouse",
  "reggaeton with steel drums",
  "ambient synth pads",
];

const MORE = [
  "rock and roll electric guitar solo",
  "detroit rap with a heavy bass",
  "sunrise dj set",
  "hard synthwave",
  "mambo from jamaica",
  "arabic gospel choir",
  "bossa nova guitar at the beach",
  "chiptune boss battle",
  "slow blues harmonica",
  "string quartet in a thunderstorm",
  "k-pop with a big chorus",
  "deep house with vocal chops",
  "marching band in the rain",
  "cello and rain on a window",
  "afrobeat horns",
  "dubstep wobble bass",
  "flamenco guitar and hand claps",
  "gamelan at night",
  "trap hi-hats and 808s",
  "celtic bagpipes on a cliff",
  "smooth jazz saxophone at midnight",
  "bluegrass banjo breakdown",
  "typing on a mechanical keyboard",
  "drum and bass at 174 bpm",
];

export const ALL_PROMPTS = [...SUGGESTIONS, ...MORE];

/** A random prompt, never the one given (so the dice always changes something). */
export function randomPrompt(current = "") {
  const choices = ALL_PROMPTS.filter((prompt) => prompt !== current.trim());
  return choices[Math.floor(Math.random() * choices.length)];
}
