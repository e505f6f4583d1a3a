// A process that contends for the agent's lock on command (agent/lock.test.ts): the
// parent sends { dir, at } to every contender; at `at` each calls acquireLock(dir) and,
// if it got the lock, claims `<dir>/holder` with O_EXCL for a moment. A claim that
// finds the file already there means two processes held the lock together.
import { open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { acquireLock } from '../../agent/lock.js';

interface Trial {
  dir: string;
  at: number;
  holdMs: number;
}

process.on('message', (msg: Trial | 'exit') => {
  if (msg === 'exit') process.exit(0);
  void (async () => {
    const wait = msg.at - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    let acquired = false;
    let overlap = false;
    let error: string | undefined;
    try {
      const lock = await acquireLock(msg.dir);
      acquired = true;
      const holder = join(msg.dir, 'holder');
      try {
        const h = await open(holder, 'wx');
        await h.close();
        await new Promise((r) => setTimeout(r, msg.holdMs));
        await unlink(holder);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        overlap = true;
      }
      await lock.release();
    } catch (e) {
      if ((e as Error).name !== 'LockHeldError') error = (e as Error).stack ?? String(e);
    }
    process.send!({ acquired, overlap, ...(error ? { error } : {}) });
  })();
});
process.send!('ready');
