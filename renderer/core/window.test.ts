import { describe, expect, it } from 'vitest';
import { SettingError } from './errors.js';
import { anyWindowOpen, describeOpening, nextWindowOpening, parseWindow, parseWindows, waitingForWindowDescription, windowOpen } from './window.js';

const at = (iso: string) => new Date(iso);

describe('parseWindow', () => {
  it('reads days, times and the zone', () => {
    expect(parseWindow('Sun 02:00-05:00 Europe/Berlin')).toEqual({
      text: 'Sun 02:00-05:00 Europe/Berlin',
      days: [0],
      start: 120,
      end: 300,
      timeZone: 'Europe/Berlin',
    });
    expect(parseWindow('Mon-Fri 22:00-02:00').days).toEqual([1, 2, 3, 4, 5]);
    expect(parseWindow('Fri-Mon 22:00-02:00').days).toEqual([0, 1, 5, 6]);
    expect(parseWindow('Sat,Sun 00:00-24:00 UTC')).toMatchObject({ days: [0, 6], start: 0, end: 0 });
    expect(parseWindow('daily 03:00-04:00 America/Edmonton').days).toHaveLength(7);
  });

  it('names what is wrong', () => {
    expect(() => parseWindow('Sunday')).toThrow(SettingError);
    expect(() => parseWindow('Sun 02:00-05:00 Mars/Olympus')).toThrow(/unknown time zone "Mars\/Olympus"/);
    expect(() => parseWindow('Sux 02:00-05:00')).toThrow(/"Sux" is not a weekday/);
    expect(() => parseWindow('Sun 25:00-05:00')).toThrow(/25:00 is not a time of day/);
    expect(() => parseWindow('Sun 05:00-05:00')).toThrow(/same time/);
  });

  it('splits several windows on ;', () => {
    expect(parseWindows('Sat 01:00-02:00 UTC; Sun 01:00-02:00 UTC').map((w) => w.days)).toEqual([[6], [0]]);
    expect(parseWindows('')).toEqual([]);
  });
});

describe('windowOpen', () => {
  const berlin = parseWindow('Sun 02:00-05:00 Europe/Berlin');

  it('follows the zone, summer and winter time', () => {
    // 2025-06-08 is a Sunday; Berlin is UTC+2 in June, UTC+1 in January.
    expect(windowOpen(berlin, at('2025-06-08T00:00:00Z'))).toBe(true);
    expect(windowOpen(berlin, at('2025-06-07T23:59:00Z'))).toBe(false);
    expect(windowOpen(berlin, at('2025-06-08T03:00:00Z'))).toBe(false); // 05:00 local: end is exclusive
    expect(windowOpen(berlin, at('2025-01-12T01:00:00Z'))).toBe(true); // 02:00 CET
    expect(windowOpen(berlin, at('2025-01-12T00:30:00Z'))).toBe(false);
  });

  it('a window past midnight belongs to the day it starts', () => {
    const late = parseWindow('Fri 22:00-02:00 UTC');
    expect(windowOpen(late, at('2025-06-06T23:00:00Z'))).toBe(true); // Friday
    expect(windowOpen(late, at('2025-06-07T01:59:00Z'))).toBe(true); // Saturday early
    expect(windowOpen(late, at('2025-06-07T23:00:00Z'))).toBe(false); // Saturday late
    expect(windowOpen(late, at('2025-06-08T01:00:00Z'))).toBe(false); // Sunday early
  });

  it('no windows means always open', () => {
    expect(anyWindowOpen([], at('2025-06-07T12:00:00Z'))).toBe(true);
  });
});

describe('nextWindowOpening', () => {
  it('is the next start in the zone, across a DST change', () => {
    const berlin = parseWindows(['Sun 02:00-05:00 Europe/Berlin']);
    // Saturday noon UTC in June -> Sunday 02:00 CEST = 00:00Z.
    expect(nextWindowOpening(berlin, at('2025-06-07T12:00:00Z'))?.toISOString()).toBe('2025-06-08T00:00:00.000Z');
    // Sunday after the window -> next Sunday.
    expect(nextWindowOpening(berlin, at('2025-06-08T06:00:00Z'))?.toISOString()).toBe('2025-06-15T00:00:00.000Z');
    // Clocks go back on 2025-10-26: 02:00 happens twice (00:00Z in CEST, 01:00Z in CET); either is the opening.
    expect(['2025-10-26T00:00:00.000Z', '2025-10-26T01:00:00.000Z']).toContain(nextWindowOpening(berlin, at('2025-10-25T12:00:00Z'))?.toISOString());
    // Winter: 02:00 CET = 01:00Z.
    expect(nextWindowOpening(berlin, at('2025-11-01T12:00:00Z'))?.toISOString()).toBe('2025-11-02T01:00:00.000Z');
  });

  it('takes the earliest of several windows in different zones', () => {
    const windows = parseWindows(['Sun 02:00-05:00 Europe/Berlin', 'Sat 20:00-21:00 America/Edmonton']);
    // Saturday 20:00 MDT = Sunday 02:00Z, after Berlin's Sunday 00:00Z.
    expect(nextWindowOpening(windows, at('2025-06-07T12:00:00Z'))?.toISOString()).toBe('2025-06-08T00:00:00.000Z');
    expect(nextWindowOpening(windows, at('2025-06-08T01:00:00Z'))).toEqual(at('2025-06-08T01:00:00Z')); // open now
    expect(nextWindowOpening(windows, at('2025-06-08T04:00:00Z'))?.toISOString()).toBe('2025-06-15T00:00:00.000Z');
  });

  it('says when it opens, in the zone and in UTC', () => {
    const berlin = parseWindows('Sun 02:00-05:00 Europe/Berlin');
    expect(describeOpening(berlin, at('2025-06-07T12:00:00Z'))).toBe('Sun 02:00 Europe/Berlin (2025-06-08T00:00Z)');
    expect(waitingForWindowDescription(berlin, at('2025-06-07T12:00:00Z'))).toBe(
      'waiting for window (opens Sun 02:00 Europe/Berlin (2025-06-08T00:00Z))',
    );
  });
});
