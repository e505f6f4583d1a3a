// The part of pako 1.x (isomorphic-git's own inflater) that pack-guard.ts uses.
declare module 'pako' {
  export class Inflate {
    constructor(options?: { chunkSize?: number });
    push(data: Uint8Array, mode?: boolean | number): boolean;
    onData(chunk: Uint8Array): void;
    onEnd(status: number): void;
    ended: boolean;
    err: number;
    msg: string;
    strm: { avail_in: number };
  }
  const pako: { Inflate: typeof Inflate };
  export default pako;
}
