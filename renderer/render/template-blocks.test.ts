// A template whose blocks do not pair up names the line where the block opens, not the
// end of the file where Handlebars notices.
import Handlebars from 'handlebars';
import { describe, expect, it } from 'vitest';
import { TemplateCompileError } from '../core/errors.js';
import { compileTemplates } from './render.js';
import { findBlockProblem } from './template-blocks.js';

function compileError(text: string, name = 'x.hbs'): TemplateCompileError {
  try {
    compileTemplates(new Map([[name, text]]));
  } catch (e) {
    expect(e).toBeInstanceOf(TemplateCompileError);
    return e as TemplateCompileError;
  }
  throw new Error('expected a TemplateCompileError');
}

describe('blocks that do not pair up', () => {
  it('names the line where an unclosed block opens, not the end of the file', () => {
    const e = compileError('a: 1\nb: 2\n{{#if features.monitoring}}\nc: 3\n{{#each env}}{{@key}}{{/each}}\nd: 4\n\n');
    expect(e.message).toBe('templates/x.hbs:3: {{#if}} opened here is never closed (add {{/if}} where it ends)');
    expect(e.line).toBe(3);
  });

  it('names both lines of a close that does not match its open', () => {
    const e = compileError('a: 1\n{{#if features.monitoring}}\nb: 2\n{{/each}}\n');
    expect(e.message).toBe('templates/x.hbs:2: {{#if}} opened here is closed by {{/each}} at line 4; close it with {{/if}} first');
  });

  it('points at the inner block when a close skips it', () => {
    const e = compileError('{{#if features.a}}\n  {{#each env}}\n  x\n{{/if}}\n', 'nginx/x.conf.hbs');
    expect(e.message).toBe('templates/nginx/x.conf.hbs:2: {{#each}} opened here is closed by {{/if}} at line 4; close it with {{/each}} first');
  });

  it('names a close with no block open', () => {
    const e = compileError('{{#if a}}\n{{/if}}\n{{/if}}\n');
    expect(e.message).toBe('templates/x.hbs:3: {{/if}} closes no open block');
  });

  it('lists every block still open, the innermost first', () => {
    expect(findBlockProblem('{{#if a}}\n{{^each b}}\n{{~#with c~}}\n')).toEqual({
      line: 3,
      detail: '{{#with}} opened here is never closed (add {{/with}} where it ends); {{#if}} at line 1, {{^each}} at line 2 are not closed either',
    });
  });

  it('reads blocks as Handlebars does: else chains, comments, raw blocks and escapes do not count', () => {
    const text = '{{#if a}}x{{else if b}}y{{else}}z{{/if}}\n{{!-- {{#if}} --}}\n\\{{#if}}\n{{{{raw}}}}{{#each}}{{{{/raw}}}}\n{{#> layout}}p{{/layout}}\n';
    expect(findBlockProblem(text)).toBeUndefined();
    expect(findBlockProblem(`${text}{{#unless c}}\n`)).toEqual({ line: 6, detail: expect.stringMatching(/^\{\{#unless\}\} opened here is never closed/) });
  });

  it('leaves other syntax errors to Handlebars, with their line', () => {
    expect(compileError('a: 1\n{{#if x}}{{/if}}\nb: {{domain}\n').message).toMatch(/^templates\/x\.hbs:3: syntax error: /);
  });

  it('finds a problem exactly where Handlebars itself refuses the blocks', () => {
    const texts = [
      '{{#if a}}x{{else if b}}y{{else}}z{{/if}}\n{{!-- {{#if}} --}}\n\\{{#if}}\n{{{{raw}}}}{{#each}}{{{{/raw}}}}\n{{#> layout}}p{{/layout}}\n',
      '{{#if a}}\n{{#each b}}{{/each}}\n',
      '{{#if a}}\n{{/each}}\n',
      '{{#if a}}\n{{/if}}\n{{/if}}\n',
      '{{#each a as |x i|}}{{x}}{{/each}}{{^b}}c{{/b}}\n',
      '{{~#with c~}}\n{{/with}}\n{{#unless d}}\n',
    ];
    for (const text of texts) {
      let handlebarsRefuses = false;
      try {
        Handlebars.parse(text);
      } catch {
        handlebarsRefuses = true;
      }
      expect({ text, problem: findBlockProblem(text) !== undefined }).toEqual({ text, problem: handlebarsRefuses });
    }
  });
});
