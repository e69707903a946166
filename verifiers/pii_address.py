"""Street addresses as patterns: a number and a street type (USPS Publication 28's suffixes: "50 Point Walter
Road"), continental forms where the number follows ("Via Leopardi 83", "Ulriksholmvej 46"), a unit ("Suite 394"),
PO boxes and US military mail ("PSC 2945, Box 1168 APO AA 72859").

The patterns are case-sensitive (presidio's default flags ignore case, which made "5 miles down the road" an
address) and run on presidio's `regex` engine, so `\\p{Lu}` is any capital letter.

pyap (US, Canadian and British addresses) was tried and not kept: it needs street, city and state together, found
2 of the bench's 374 labelled addresses, and took "IBAN GB22EH" for a British one.
"""

from __future__ import annotations

# USPS Publication 28, appendix C1: the street types in common use, then their standard abbreviations; left out
# are those that head other Title Case phrases ("10 Data Science Course", "3 Power Station", "2 Gold Mission").
USPS_TYPES = (
    "Alley Avenue Bayou Beach Bend Bluffs? Boulevard Brooks? Bypass Canyon Causeway Circles? Cliffs? Commons? "
    "Corners? Courts? Coves? Creek Crescent Crest Crossing Curve Dale Drives? Estates? Expressway Extensions? "
    "Ferry Flats? Fords? Forges? Forks? Freeway Gardens? Gateway Glens? Greens? Groves? Harbors? Haven Heights "
    "Highway Hills? Hollow Inlet Isle Junctions? Knolls? Lakes? Landing Lane Loop Manors? Meadows? Mews Mills? "
    "Motorway Neck Orchard Oval Overpass Parks? Parkways? Pike Pines? Place Plains? Plaza Points? Ports? Prairie "
    "Ranch Rapids? Ridges? River Roads? Row Shoals? Shores? Springs? Spurs? Squares? Stream Streets? Summit Terrace "
    "Trace Trail Tunnel Turnpike Underpass Valleys? Viaduct Views? Villages? Ville Vista Walks? Way Wells? Close "
    "Aly Ave Blvd Cir Ct Cres Dr Expy Fwy Hts Hwy Jct Ln Pkwy Pl Plz Rd Sq St Str Ter Trl Wy"
)
STREET_TYPES = USPS_TYPES.split()  # regexes: "Bluffs?" is Bluff or Bluffs
STREET_TYPE = rf"(?:{'|'.join(STREET_TYPES)})"
# Where the street's name comes first and the number after: a leading word, or a compound's ending.
STREET_PREFIXES = ("Rue", "Via", "Viale", "Piazza", "Corso", "Calle", "Carrer", "Avenida", "Paseo", "Plaza", "Rua",
                   "Travessa", "Largo", "Chemin", "Avenue", "Allée", "Boulevard", "Ulica")  # fmt: skip
STREET_PREFIX = rf"(?:{'|'.join(STREET_PREFIXES)})"
# Upper case, for telling "Morris Street" and "Via Carlo Cattaneo" from a person.
STREET_TYPE_WORDS = frozenset(w.upper() for t in STREET_TYPES for w in (t.rstrip("?"), t.removesuffix("s?")))
STREET_PREFIX_WORDS = frozenset(w.upper() for w in STREET_PREFIXES)
WORD = r"\p{Lu}[\p{L}'.-]*"  # a capitalised word
UNIT = r"(?:Apt\.?|Apartment|Suite|Ste\.?)\s*#?\s*\d{1,5}[A-Z]?\b"
PARTICLE = r"(?:d[aeiou]s?|del|della|la|le|les|van|von|der|den)"  # Rue de Bouillon, Rua dos Anjos
STREET_ENDING = (
    r"(?:straße|strasse|str\.|weg|gasse|allee|platz|damm|ufer|vej|gade|stræde|vägen|gatan|väg|gata|veien|vegen|"
    r"katu|tie|kuja|polku|laan|straat|gracht|plein|kade|steeg)"
)
ADDRESS_PATTERNS = {
    "numbered_street": rf"\b\d{{1,6}}[A-Z]?\s+(?:{WORD}\s+){{1,4}}{STREET_TYPE}\b\.?(?:,?\s+(?:{UNIT}|Unit\s+\d+))?",
    "street_then_number": rf"\b{STREET_PREFIX}\s+(?:(?:{WORD}|{PARTICLE})\s+){{1,4}}\d{{1,5}}[a-zA-Z]?\b",
    "compound_street": rf"\b\p{{Lu}}\p{{Ll}}+{STREET_ENDING}\s+\d{{1,5}}[a-zA-Z]?\b",
    "unit": rf"\b{UNIT}",
    "po_box": r"\bP\.?\s?O\.?\s+Box\s+\d{1,6}\b",
    "military": r"\b(?:(?:PSC|CMR|Unit)\s+\d{3,5},?\s+Box\s+\d{3,5}|US[NC]?S\s+" + WORD + r")\s*,?\s*[ADF]PO\s+A[AEP]"
    r"\s+\d{5}\b",
}
