// Maintenance windows: when a host may apply a change, e.g. `Sun 02:00-05:00 Europe/Berlin`.
// Shared by the agent (hold a commit until its window opens) and the renderer
// (fleet validation, `flotilla status`). Pure: every function takes `now`; time
// zones come from Intl, so DST shifts follow the zone's own rules.
import { SettingError } from './errors.js';

export const WEEKDAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

export interface MaintenanceWindow {
  /** The text as written, for messages. */
  text: string;
  /** Weekdays the window starts on, 0 = Sunday. */
  days: number[];
  /** Minutes after local midnight; `end <= start` means the window runs past midnight. */
  start: number;
  end: number;
  /** IANA zone name; `UTC` when the text names none. */
  timeZone: string;
}

const SYNTAX = /^(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?$/;
const DAY_NAMES = new Map<string, number>(WEEKDAYS.map((d, i) => [d.toLowerCase(), i]));

function dayIndex(name: string, text: string): number {
  const i = DAY_NAMES.get(name.toLowerCase().slice(0, 3));
  if (i === undefined || !/^[a-z]{3,9}$/i.test(name)) throw windowError(text, `"${name}" is not a weekday (Mon, Tue, ... Sun)`);
  return i;
}

function windowError(text: string, why: string): SettingError {
  return new SettingError('window', `${JSON.stringify(text)}: ${why}; expected e.g. "Sun 02:00-05:00 Europe/Berlin" or "Mon-Fri 22:00-02:00 UTC"`);
}

function parseDays(spec: string, text: string): number[] {
  if (/^(daily|\*)$/i.test(spec)) return [0, 1, 2, 3, 4, 5, 6];
  const days = new Set<number>();
  for (const part of spec.split(',')) {
    const range = part.split('-');
    if (range.length === 1) days.add(dayIndex(part, text));
    else if (range.length === 2) {
      const from = dayIndex(range[0]!, text);
      const to = dayIndex(range[1]!, text);
      for (let d = from; ; d = (d + 1) % 7) {
        days.add(d);
        if (d === to) break;
      }
    } else throw windowError(text, `"${part}" is not a day or a day range`);
  }
  return [...days].sort((a, b) => a - b);
}

/** True when Intl knows the zone. */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

/** Parses one window; throws a SettingError (setting `window`) saying what is wrong. */
export function parseWindow(text: string): MaintenanceWindow {
  const trimmed = text.trim();
  const m = SYNTAX.exec(trimmed);
  if (!m) throw windowError(trimmed, 'not "<days> HH:MM-HH:MM [time zone]"');
  const minutes = (h: string, mi: string) => {
    const hours = Number(h);
    const mins = Number(mi);
    if (hours > 24 || mins > 59 || (hours === 24 && mins !== 0)) throw windowError(trimmed, `${h}:${mi} is not a time of day`);
    return hours * 60 + mins;
  };
  const start = minutes(m[2]!, m[3]!);
  const end = minutes(m[4]!, m[5]!);
  if (start === 24 * 60) throw windowError(trimmed, 'a window cannot start at 24:00');
  if (start === end) throw windowError(trimmed, 'start and end are the same time');
  const timeZone = m[6] ?? 'UTC';
  if (!isTimeZone(timeZone)) throw windowError(trimmed, `unknown time zone "${timeZone}" (use an IANA name like Europe/Berlin)`);
  return { text: trimmed, days: parseDays(m[1]!, trimmed), start, end: end % (24 * 60), timeZone };
}

/** Several windows: a list, or one string with windows separated by `;` (as FLOTILLA_WINDOW takes them). */
export function parseWindows(spec: string | readonly string[]): MaintenanceWindow[] {
  const texts = typeof spec === 'string' ? spec.split(';') : [...spec];
  return texts.map((t) => t.trim()).filter(Boolean).map(parseWindow);
}

interface WallClock {
  year: number;
  /** 1-12 */
  month: number;
  day: number;
  weekday: number;
  /** Minutes after local midnight. */
  minutes: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function wallClock(instant: Date, timeZone: string): WallClock {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      weekday: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(instant).map((p) => [p.type, p.value]));
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    weekday: dayIndex(parts.weekday!, parts.weekday!),
    minutes: (Number(parts.hour) % 24) * 60 + Number(parts.minute),
  };
}

/** The instant the wall clock in `timeZone` shows `minutes` on the given local date. */
function zonedInstant(year: number, month: number, day: number, minutes: number, timeZone: string): Date {
  const asUtc = Date.UTC(year, month - 1, day, 0, minutes);
  const offsetAt = (t: number) => {
    const w = wallClock(new Date(t), timeZone);
    return Date.UTC(w.year, w.month - 1, w.day, 0, w.minutes) - Math.floor(t / 60000) * 60000;
  };
  let guess = asUtc - offsetAt(asUtc);
  // Once more with the offset at the guess: right across a DST change.
  guess = asUtc - offsetAt(guess);
  return new Date(guess);
}

/** Whether `window` is open at `now` (start inclusive, end exclusive). */
export function windowOpen(window: MaintenanceWindow, now: Date): boolean {
  const w = wallClock(now, window.timeZone);
  if (window.end > window.start) return window.days.includes(w.weekday) && w.minutes >= window.start && w.minutes < window.end;
  // Past midnight: the part after midnight belongs to the day the window started.
  if (window.days.includes(w.weekday) && w.minutes >= window.start) return true;
  return window.days.includes((w.weekday + 6) % 7) && w.minutes < window.end;
}

/** True when no windows are set (always open) or any one of them is open. */
export function anyWindowOpen(windows: readonly MaintenanceWindow[], now: Date): boolean {
  return windows.length === 0 || windows.some((w) => windowOpen(w, now));
}

/** When the next window opens after `now`; `now` itself when one is open, undefined when none are set. */
export function nextWindowOpening(windows: readonly MaintenanceWindow[], now: Date): Date | undefined {
  if (windows.length === 0) return undefined;
  if (anyWindowOpen(windows, now)) return now;
  let best: Date | undefined;
  for (const window of windows) {
    const today = wallClock(now, window.timeZone);
    for (let ahead = 0; ahead <= 7; ahead++) {
      const date = new Date(Date.UTC(today.year, today.month - 1, today.day + ahead));
      if (!window.days.includes(date.getUTCDay())) continue;
      const at = zonedInstant(date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), window.start, window.timeZone);
      if (at.getTime() > now.getTime()) {
        if (!best || at < best) best = at;
        break;
      }
    }
  }
  return best;
}

function hhmm(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

/** `Sun 02:00 Europe/Berlin (2025-06-08T00:00Z)`: the opening as the window's zone shows it, and in UTC. */
export function describeOpening(windows: readonly MaintenanceWindow[], now: Date): string | undefined {
  const at = nextWindowOpening(windows, now);
  if (!at) return undefined;
  const window = windows.find((w) => windowOpen(w, at)) ?? windows[0]!;
  const local = wallClock(at, window.timeZone);
  return `${WEEKDAYS[local.weekday]} ${hhmm(local.minutes)} ${window.timeZone} (${at.toISOString().slice(0, 16)}Z)`;
}

/** What the agent posts while it holds a commit. */
export function waitingForWindowDescription(windows: readonly MaintenanceWindow[], now: Date): string {
  const opening = describeOpening(windows, now);
  return `waiting for window (opens ${opening ?? 'never'})`;
}

export const WAITING_FOR_WINDOW = 'waiting for window';
