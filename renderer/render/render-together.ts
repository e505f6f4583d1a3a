// A tenant's templates rendered in one Handlebars call instead of one call each.
// Every top-level call of a compiled template first copies and wraps every helper
// of its environment and builds its prototype-access rules; for the small config
// templates a tenant has, that setup costs about as much as the rendering (a third
// of a 1,000-tenant render). Handlebars runs a partial inside its caller's setup, so
// a driver template that includes the templates as partials pays it once per
// tenant, with the same helpers and the same access rules.
//
// The driver's output is the templates' outputs joined by a separator that no
// config file holds. If one ever does, or the driver throws, the caller renders the
// templates one by one, which also names the template an error came from.
import Handlebars from 'handlebars';

/** Control characters around a name: a template whose output holds this is rendered on its own. */
const SEPARATOR = '\u0001flotilla-template-end\u0001';
/** Distinct template sets seen; a fleet has one or a few (a plan compiles base and head). */
const DRIVER_LIMIT = 64;

type CompileOptions = Parameters<typeof Handlebars.compile>[1];

/** A template that can run as a partial: compiled, and with no partials or decorators of its own. */
export interface TogetherTemplate {
  source: string;
  render?: Handlebars.TemplateDelegate;
}

/**
 * The outputs of `templates` for `context`, in order; undefined when they must be
 * rendered one by one (an error, or an output holding the separator).
 */
export type RenderTogether = (templates: readonly TogetherTemplate[], context: object) => string[] | undefined;

/**
 * A RenderTogether over its own Handlebars environment: `registerHelpers` gives it
 * the helpers the templates were compiled with; the templates' partial names live
 * only there, so no template can include another by name.
 */
export function renderTogether(registerHelpers: (hb: typeof Handlebars) => void, options: CompileOptions): RenderTogether {
  const hb = Handlebars.create();
  registerHelpers(hb);
  const partialNames = new Map<string, string>();
  const drivers = new Map<string, Handlebars.TemplateDelegate>();

  const partialName = (template: TogetherTemplate): string => {
    let name = partialNames.get(template.source);
    if (name === undefined) {
      name = `t${partialNames.size}`;
      hb.registerPartial(name, template.render!);
      partialNames.set(template.source, name);
    }
    return name;
  };

  const driverFor = (templates: readonly TogetherTemplate[]): Handlebars.TemplateDelegate => {
    let key = '';
    for (const t of templates) key += `${partialName(t)} `;
    let driver = drivers.get(key);
    if (!driver) {
      if (drivers.size >= DRIVER_LIMIT) drivers.clear();
      // On one line with text between them, no partial is "standalone", so none is indented.
      driver = hb.compile(templates.map((t) => `{{> ${partialName(t)}}}`).join(SEPARATOR), options);
      drivers.set(key, driver);
    }
    return driver;
  };

  return (templates, context) => {
    let output: string;
    try {
      output = driverFor(templates)(context);
    } catch {
      return undefined;
    }
    const outputs = output.split(SEPARATOR);
    return outputs.length === templates.length ? outputs : undefined;
  };
}

/** Whether a template can run as a partial of a driver: partials and decorators of its own would resolve in the driver's scope. */
export function canRenderTogether(ast: hbs.AST.Program): boolean {
  let alone = false;
  const visitor = new Handlebars.Visitor();
  const mark = () => {
    alone = true;
  };
  visitor.PartialStatement = mark;
  visitor.PartialBlockStatement = mark;
  visitor.Decorator = mark;
  visitor.DecoratorBlock = mark;
  visitor.accept(ast);
  return !alone;
}
