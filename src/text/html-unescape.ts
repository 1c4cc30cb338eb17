/**
 * HTML character-reference decoding with the semantics of Python's `html.unescape` (the step
 * OpenAI's CLIP tokenizer applies twice in `basic_clean`): numeric references (`&#38;`, `&#x26;`,
 * the `;` optional), the WHATWG replacements for references into the C1 range and for invalid
 * code points, and named references. Only a subset of the HTML5 named references is known here:
 * the markup ones (`amp lt gt quot apos`), the 96 Latin-1 ones (`nbsp` .. `yuml`, which like
 * `amp lt gt quot` also decode without the `;`) and common typographic ones. An unknown name is
 * left as it is, which is what Python does for a name it does not know.
 */

/** The HTML 4 Latin-1 entity names, for U+00A0 .. U+00FF in order. */
const LATIN1_NAMES = (
  "nbsp iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr " +
  "deg plusmn sup2 sup3 acute micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest " +
  "Agrave Aacute Acirc Atilde Auml Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml " +
  "ETH Ntilde Ograve Oacute Ocirc Otilde Ouml times Oslash Ugrave Uacute Ucirc Uuml Yacute THORN szlig " +
  "agrave aacute acirc atilde auml aring aelig ccedil egrave eacute ecirc euml igrave iacute icirc iuml " +
  "eth ntilde ograve oacute ocirc otilde ouml divide oslash ugrave uacute ucirc uuml yacute thorn yuml"
).split(" ");

/** Names that need the trailing `;` (HTML5 does not decode them without it). */
const SEMICOLON_ONLY: Record<string, number> = {
  apos: 0x27,
  OElig: 0x152, oelig: 0x153, Scaron: 0x160, scaron: 0x161, Yuml: 0x178, fnof: 0x192,
  circ: 0x2c6, tilde: 0x2dc,
  ensp: 0x2002, emsp: 0x2003, thinsp: 0x2009, zwnj: 0x200c, zwj: 0x200d, lrm: 0x200e, rlm: 0x200f,
  ndash: 0x2013, mdash: 0x2014, lsquo: 0x2018, rsquo: 0x2019, sbquo: 0x201a,
  ldquo: 0x201c, rdquo: 0x201d, bdquo: 0x201e, dagger: 0x2020, Dagger: 0x2021, bull: 0x2022,
  hellip: 0x2026, permil: 0x2030, prime: 0x2032, Prime: 0x2033, lsaquo: 0x2039, rsaquo: 0x203a,
  oline: 0x203e, frasl: 0x2044, euro: 0x20ac, trade: 0x2122,
  larr: 0x2190, uarr: 0x2191, rarr: 0x2192, darr: 0x2193, harr: 0x2194,
  minus: 0x2212, infin: 0x221e, ne: 0x2260, le: 0x2264, ge: 0x2265,
  spades: 0x2660, clubs: 0x2663, hearts: 0x2665, diams: 0x2666,
};

/** name (with `;` where required) -> replacement. */
const NAMED = new Map<string, string>();
function addNamed(name: string, cp: number, legacy: boolean): void {
  const s = String.fromCodePoint(cp);
  NAMED.set(`${name};`, s);
  if (legacy) NAMED.set(name, s);
}
LATIN1_NAMES.forEach((n, i) => addNamed(n, 0xa0 + i, true));
for (const [n, cp] of [["amp", 0x26], ["lt", 0x3c], ["gt", 0x3e], ["quot", 0x22]] as const) {
  addNamed(n, cp, true);
  addNamed(n.toUpperCase(), cp, true);
}
addNamed("COPY", 0xa9, true);
addNamed("REG", 0xae, true);
for (const [n, cp] of Object.entries(SEMICOLON_ONLY)) addNamed(n, cp, false);

/** Numeric references into 0x00, 0x0d and 0x80..0x9f (the windows-1252 reading of the C1 range). */
const NUMERIC_REPLACEMENTS = new Map<number, string>([
  [0x00, "\ufffd"], [0x0d, "\r"],
  [0x80, "\u20ac"], [0x81, "\x81"], [0x82, "\u201a"], [0x83, "\u0192"], [0x84, "\u201e"],
  [0x85, "\u2026"], [0x86, "\u2020"], [0x87, "\u2021"], [0x88, "\u02c6"], [0x89, "\u2030"],
  [0x8a, "\u0160"], [0x8b, "\u2039"], [0x8c, "\u0152"], [0x8d, "\x8d"], [0x8e, "\u017d"],
  [0x8f, "\x8f"], [0x90, "\x90"], [0x91, "\u2018"], [0x92, "\u2019"], [0x93, "\u201c"],
  [0x94, "\u201d"], [0x95, "\u2022"], [0x96, "\u2013"], [0x97, "\u2014"], [0x98, "\u02dc"],
  [0x99, "\u2122"], [0x9a, "\u0161"], [0x9b, "\u203a"], [0x9c, "\u0153"], [0x9d, "\x9d"],
  [0x9e, "\u017e"], [0x9f, "\u0178"],
]);

/** Code points a numeric reference decodes to nothing (controls and non-characters). */
function droppedCodePoint(cp: number): boolean {
  return (
    (cp >= 0x1 && cp <= 0x8) ||
    cp === 0xb ||
    (cp >= 0xe && cp <= 0x1f) ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0xfdd0 && cp <= 0xfdef) ||
    (cp & 0xfffe) === 0xfffe
  );
}

function decodeNumeric(digits: string, hex: boolean): string {
  const cp = hex ? parseInt(digits, 16) : parseInt(digits, 10);
  const special = NUMERIC_REPLACEMENTS.get(cp);
  if (special !== undefined) return special;
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return "\ufffd";
  if (droppedCodePoint(cp)) return "";
  return String.fromCodePoint(cp);
}

function decodeNamed(ref: string): string {
  const exact = NAMED.get(ref);
  if (exact !== undefined) return exact;
  // Longest known prefix (legacy names decode without `;`, e.g. "&ampx" -> "&x").
  for (let n = ref.length - 1; n > 1; n--) {
    const hit = NAMED.get(ref.slice(0, n));
    if (hit !== undefined) return hit + ref.slice(n);
  }
  return `&${ref}`;
}

const REF_RE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/g;

/** Decode HTML character references as Python's `html.unescape` does (see the module comment). */
export function htmlUnescape(text: string): string {
  if (!text.includes("&")) return text;
  return text.replace(REF_RE, (_m, ref: string) => {
    if (ref.startsWith("#")) {
      const hex = ref[1] === "x" || ref[1] === "X";
      const digits = ref.slice(hex ? 2 : 1).replace(/;$/, "");
      return decodeNumeric(digits, hex);
    }
    return decodeNamed(ref);
  });
}
