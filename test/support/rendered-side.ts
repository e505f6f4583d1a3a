// One tenant's render as buildPlan reads it, from a few files and manifest fields:
// for plan tests that need a base and a head without rendering templates.
import type { Manifest } from '../../renderer/core/manifest.js';
import type { RenderedSide } from '../../renderer/plan/plan.js';

export function renderedSide(slug: string, files: Record<string, string>, manifest: Partial<Manifest> = {}, paused = false): RenderedSide {
  return {
    slug,
    paused,
    files: Object.entries(files).map(([path, content]) => ({ path, content, mode: 0o644 })),
    manifest: {
      schemaVersion: 1,
      tenant: slug,
      mode: 'managed',
      imageTag: 'v2.10.3',
      source: { repo: 'fleet', commit: 'c'.repeat(40) },
      files: [],
      envPatch: {},
      requiredVariables: [],
      secrets: [],
      ...manifest,
    },
  };
}
