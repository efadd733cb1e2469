// Types of find-chromium.mjs for test/report/html.test.ts.
export declare const DEBIAN_CHROMIUM: string;
/** Where a Chromium was found; `runs`: the file exists and is executable. */
export interface FoundChromium {
  path: string;
  from: 'CHROMIUM_PATH' | 'default' | 'PATH';
  runs: boolean;
}
export declare function findChromium(env?: NodeJS.ProcessEnv): FoundChromium | undefined;
