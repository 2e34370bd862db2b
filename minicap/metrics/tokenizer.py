"""A pure-Python stand-in for the PTB tokenizer of the COCO caption evaluation.

The official evaluation runs Stanford's Java ``PTBTokenizer`` (lowercasing on)
over every caption and then drops the punctuation tokens
``'' ' `` ` . ? ! , : - -- ... ;``. This module reproduces what that pipeline
does to ordinary English captions:

- lowercase everything;
- split punctuation off words and drop it (including double quotes, which the
  Java tokenizer first turns into ````` and ``''``);
- split clitics off and keep them: ``dog's`` -> ``dog 's``, ``don't`` ->
  ``do n't``, ``can't`` -> ``ca n't``, ``i'm`` -> ``i 'm`` (also ``'re 've
  'll 'd``), and ``cannot`` -> ``can not``;
- keep hyphenated words (``black-and-white``), numbers with separators
  (``3.5``, ``1,000``, ``10:30``), acronyms (``u.s.``) and ``o'clock`` whole;
- keep the vocabulary's special tokens ``<unk>``, ``<start>``, ``<end>``,
  ``<null>`` whole: ``<``, an ASCII letter, then ASCII letters, digits or
  ``_ . -``, then ``>`` (an optional ``/`` after ``<``), as Java keeps such
  SGML-like tags;
- keep words joined by ``.``, ``!`` or ``?`` with no space after it whole, as
  Java does: ``"A dog.A cat."`` -> ``a dog.a cat``. The word must start with a
  letter and so must each part after a mark (``dog.5`` and ``5.a`` are split),
  and a ``-`` may continue it (``dog.a-b``);
- write brackets as the PTB escapes ``-lrb- -rrb- -lcb- -rcb- -lsb- -rsb-``.
  The official pipeline lowercases *before* its punctuation filter, which
  lists the upper-case escapes, so the brackets survive as words there too;
- every other symbol (``$ % & # + = * /`` standing alone) is its own token.

Tokenizing already-tokenized text (the tokens joined by spaces) returns the
same tokens, so captions that went through the Java tokenizer pass through
unchanged as long as they only contain the forms listed above.

Known differences from the Java tokenizer (stanford-corenlp 3.4.1, the jar
pycocoevalcap runs), from a comparison on about 160 captions and edge cases;
any other difference is a bug:

- abbreviations with a single period (``mr.``, ``st.``, ``etc.``, ``no.`` in
  ``no.1``, ``a.`` in ``a.5``): Java keeps the period on words in its
  abbreviation list and on a letter before a digit; here it is always dropped;
- numbers with a leading sign or period (``-5``, ``.5``): Java keeps the sign
  or period, here it is dropped (``5``);
- a number glued to a unit (``3.5mm``): Java splits it (``3.5 mm``), here it
  stays whole;
- a period followed by a hyphen (``dog.-cat``): Java keeps it whole, here it
  gives ``dog cat``;
- an apostrophe inside a number or at the start of a word (``5'6"``, ``'90s``):
  Java gives ``5 6`` and ``'90s``, here ``5'6`` and ``90s``;
- ``cannot`` with a clitic (``cannot's``): Java keeps ``cannot`` whole there
  (but splits ``cannot 's``); here it is always ``can not``, so that
  re-tokenizing changes nothing;
- underscores and repeated symbols inside words (``dog_cat``, ``c++``): Java
  keeps them whole, here ``_`` and each ``+`` is its own token;
- tags other than the form above (``<a b>``, ``<!x>``, ``<<unk>>``): Java's
  SGML rule is wider and keeps some of them whole (but splits ``<caf\u00e9>``
  and ``<ca'fe>``); here only the form above is kept whole;
- URLs, e-mail addresses and emoticons (``:)`` is ``:-rrb-`` in Java, ``-rrb-``
  here), which Java keeps whole;
- runs of ``!`` or ``?`` (``!!!``), which Java may keep as one token (and then
  not drop); here each mark is dropped;
- ``/`` and ``*``, which older Java releases escape as ``\\/`` and ``\\*``;
- informal splits (``gonna`` -> ``gon na``) and rarer clitics (``'em``, ``y'all``);
- Unicode normalisation beyond curly quotes, dashes and the ellipsis character.
"""

import re

# Punctuation tokens the official evaluation removes after tokenizing, plus the
# straight double quote (Java rewrites it to `` or '' before that filter sees it).
DROPPED = frozenset(["''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";", '"'])

_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "{": "-lcb-", "}": "-rcb-", "[": "-lsb-", "]": "-rsb-"}

# Typographic characters mapped to the ASCII forms the rules below understand.
_TYPOGRAPHY = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
    "\u2013": " -- ", "\u2014": " -- ", "\u2026": " ... ",
})

# Clitics split off the end of a word, longest first so "'ll" wins over "'l".
_CLITICS = ("n't", "'ll", "'re", "'ve", "'s", "'m", "'d")

_ALNUM = r"[^\W_]"  # a letter or digit in any script (\w without the underscore)
_LETTER = r"[^\W\d_]"  # a letter in any script
_TOKEN = re.compile(
    "|".join([
        r"-(?:lrb|rrb|lcb|rcb|lsb|rsb)-",                  # PTB bracket escapes (re-tokenizing)
        # special tokens <unk> <start> <end> <null>: decoded captions and the
        # CS231n references contain <UNK>, which Java keeps as one token
        r"</?[a-z][a-z0-9_.-]*>",
        # acronyms: u.s. a.m. -- unless a letter follows, as in "u.s.a", which
        # Java keeps whole like the next rule
        rf"(?:{_LETTER}\.){{2,}}(?!{_LETTER})",
        # words glued by . ! ? with no space after ("dog.a"): Java's PTBLexer
        # reads them as one word, and "A dog.A cat." is common in COCO
        rf"{_LETTER}{_ALNUM}*(?:[.!?]{_LETTER}{_ALNUM}*)+(?:-{_ALNUM}+)*",
        # words: letters/digits joined by - / ' &, or by . , : between digits
        rf"{_ALNUM}+(?:(?:[-/'&]|(?<=\d)[.,:](?=\d)){_ALNUM}+)*",
        rf"'(?:s|m|d|ll|re|ve)(?!{_ALNUM})",                # a clitic already split off: 's
        r"\.\.\.|--",                                       # multi-character punctuation
        r"\S",                                              # any other single symbol
    ])
)


def _split_clitics(word):
    """``"don't"`` -> ``["do", "n't"]``; repeated so ``"x's'd"`` splits fully."""
    if "'" not in word:  # the common case, and every clitic has an apostrophe
        return [word]
    tail = []
    while True:
        for clitic in _CLITICS:
            stem = word[: -len(clitic)]
            # The stem must end in a letter or digit: "x-n't" is left whole,
            # otherwise re-tokenizing the stem "x-" would give a different answer.
            if word.endswith(clitic) and stem and stem[-1].isalnum():
                tail.append(clitic)
                word = stem
                break
        else:
            return [word] + tail[::-1]


def tokenize(caption):
    """Split one caption into lowercase word tokens, punctuation removed.

    ``tokenize("A dog's toy (red).") == ["a", "dog", "'s", "toy", "-lrb-", "red", "-rrb-"]``

    Raises ValueError if ``caption`` is not a string.
    """
    if not isinstance(caption, str):
        raise ValueError(f"a caption must be a string, got {type(caption).__name__}: {caption!r:.60}")
    text = caption.translate(_TYPOGRAPHY).lower()
    tokens = []
    for match in _TOKEN.finditer(text):
        piece = match.group()
        if piece in _BRACKETS:
            tokens.append(_BRACKETS[piece])
        elif piece[0].isalnum():
            words = _split_clitics(piece)
            # Split "cannot" on the stem, after the clitics: "cannot's" then gives
            # the same tokens as its re-tokenized form "cannot 's" (Java doesn't).
            if words[0] == "cannot":
                words[0:1] = ["can", "not"]
            tokens.extend(words)
        elif piece not in DROPPED:
            tokens.append(piece)
    return tokens
