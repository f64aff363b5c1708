// WAV encoding in the browser: 16-bit PCM from a decoded AudioBuffer, so the app offers WAV
// downloads without another round trip to the server.

export function encodeWav(buffer) {
  const channels = buffer.numberOfChannels;
  const frames = buffer.length;
  const bytesPerSample = 2;
  const dataSize = frames * channels * bytesPerSample;
  const view = new DataView(new ArrayBuffer(44 + dataSize));

  const text = (offset, value) => {
    for (let i = 0; i < value.length; i += 1) view.setUint8(offset + i, value.charCodeAt(i));
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + dataSize, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, channels, true);
  view.setUint32(24, buffer.sampleRate, true);
  view.setUint32(28, buffer.sampleRate * channels * bytesPerSample, true);
  view.setUint16(32, channels * bytesPerSample, true);
  view.setUint16(34, 8 * bytesPerSample, true);
  text(36, "data");
  view.setUint32(40, dataSize, true);

  const data = [];
  for (let c = 0; c < channels; c += 1) data.push(buffer.getChannelData(c));
  let offset = 44;
  for (let i = 0; i < frames; i += 1) {
    for (let c = 0; c < channels; c += 1) {
      const sample = Math.max(-1, Math.min(1, data[c][i]));
      // Asymmetric scale so that -1 and 1 both map to the ends of the int16 range.
      view.setInt16(offset, sample < 0 ? sample * 0x8000 : sample * 0x7fff, true);
      offset += 2;
    }
  }
  return new Blob([view], { type: "audio/wav" });
}

/**
 * Clips joined end to end with a linear crossfade of `crossfade` seconds, as one AudioBuffer, for
 * downloading as one file: the studio's clips as its tools play them, or with crossfade 0 the jam's
 * pieces, which are one stream already.
 */
export function joinBuffers(buffers, crossfade = 0.04) {
  if (buffers.length === 0) throw new Error("nothing to join");
  const sampleRate = buffers[0].sampleRate;
  const channels = Math.max(...buffers.map((b) => b.numberOfChannels));
  const fade = Math.round(crossfade * sampleRate);
  let length = 0;
  for (const [i, b] of buffers.entries()) length += b.length - (i > 0 ? Math.min(fade, b.length) : 0);
  const out = new AudioBuffer({ numberOfChannels: channels, length, sampleRate });
  let start = 0;
  for (const [i, b] of buffers.entries()) {
    const overlap = i > 0 ? Math.min(fade, b.length) : 0;
    start -= overlap;
    for (let c = 0; c < channels; c += 1) {
      const source = b.getChannelData(Math.min(c, b.numberOfChannels - 1));
      const target = out.getChannelData(c);
      for (let j = 0; j < source.length; j += 1) {
        const gainIn = j < overlap ? j / overlap : 1;
        const k = start + j;
        // The previous clip's tail fades out where this one fades in.
        if (j < overlap) target[k] = target[k] * (1 - gainIn) + source[j] * gainIn;
        else target[k] = source[j];
      }
    }
    start += b.length;
  }
  return out;
}
