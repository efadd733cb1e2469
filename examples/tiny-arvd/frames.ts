/**
 * PNG strips of videos: one row per video, one column per frame, each frame upscaled by
 * nearest neighbour, values mapped from [-1, 1] to [0, 255] (clamped), white gaps between.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PNG } from 'pngjs';

/** Layout of one video, [frames, channels, height, width] (batch 1). */
export interface VideoShape {
  frames: number;
  channels: number;
  height: number;
  width: number;
}

/** How to draw the strip. */
export interface StripOptions {
  /** Video layout; defaults to tiny-arvd's 12 × 3 × 16 × 16. */
  shape?: VideoShape;
  /** Upscaling factor per pixel (nearest neighbour). Default 4. */
  scale?: number;
  /** Gap in pixels between frames and between rows. Default 2. */
  gap?: number;
}

const TINY_ARVD: VideoShape = { frames: 12, channels: 3, height: 16, width: 16 };

/** Size in pixels of a strip of `rows` videos. */
export function stripSize(rows: number, options: StripOptions = {}): { width: number; height: number } {
  const { shape = TINY_ARVD, scale = 4, gap = 2 } = options;
  return {
    width: shape.frames * shape.width * scale + (shape.frames - 1) * gap,
    height: rows * shape.height * scale + (rows - 1) * gap,
  };
}

/**
 * Draws videos (each `[1, frames, channels, height, width]` row-major, channels 1 = grey or
 * 3 = RGB) into an RGBA PNG, one video per row.
 */
export function renderStrip(videos: Float32Array[], options: StripOptions = {}): PNG {
  const { shape = TINY_ARVD, scale = 4, gap = 2 } = options;
  const { frames, channels, height, width } = shape;
  if (channels !== 1 && channels !== 3) throw new Error(`renderStrip: ${channels} channels; expected 1 or 3`);
  const size = stripSize(videos.length, options);
  const png = new PNG({ width: size.width, height: size.height });
  png.data.fill(255);
  const plane = height * width;
  const toByte = (v: number): number => Math.round(Math.min(1, Math.max(-1, v)) * 127.5 + 127.5);
  videos.forEach((video, row) => {
    if (video.length !== frames * channels * plane) {
      throw new Error(`renderStrip: video ${row} has ${video.length} values; expected ${frames * channels * plane}`);
    }
    for (let f = 0; f < frames; f++) {
      const x0 = f * (width * scale + gap);
      const y0 = row * (height * scale + gap);
      for (let py = 0; py < height * scale; py++) {
        for (let px = 0; px < width * scale; px++) {
          const src = f * channels * plane + Math.floor(py / scale) * width + Math.floor(px / scale);
          const dst = ((y0 + py) * size.width + x0 + px) * 4;
          for (let c = 0; c < 3; c++) png.data[dst + c] = toByte(video[src + (channels === 3 ? c * plane : 0)]);
          png.data[dst + 3] = 255;
        }
      }
    }
  });
  return png;
}

/** Writes `renderStrip(videos, options)` to `path` (creating its folder); returns its size. */
export function writeStrip(
  path: string,
  videos: Float32Array[],
  options: StripOptions = {},
): { width: number; height: number } {
  const png = renderStrip(videos, options);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, PNG.sync.write(png));
  return { width: png.width, height: png.height };
}
