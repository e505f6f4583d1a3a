// The one signature check of the agent: `once` runs it before it reads a fetched commit,
// `plan` before it shows one, so both refuse the same commits with the same words.
import { ApplyRefusedError } from '../renderer/core/errors.js';
import { readRawCommit } from '../renderer/core/git.js';
import { verifyCommitSignature } from '../renderer/core/signing.js';
import { readTrustedKeys } from './config.js';

/**
 * Checks the signature of `commit` (already fetched into `gitdir`) against the keys in
 * `trustedKeysFile`, over the commit object's raw bytes. Returns what to log; throws
 * ApplyRefusedError naming the commit, the reason and its detail.
 */
export async function checkCommitSigned(gitdir: string, commit: string, trustedKeysFile: string): Promise<string> {
  const check = verifyCommitSignature(await readRawCommit(gitdir, commit), await readTrustedKeys(trustedKeysFile));
  if (!check.ok) throw new ApplyRefusedError(`${commit.slice(0, 12)}: ${check.reason}: ${check.detail}`);
  return `${commit.slice(0, 12)} signed by ${check.fingerprint}${check.comment ? ` (${check.comment})` : ''}`;
}
