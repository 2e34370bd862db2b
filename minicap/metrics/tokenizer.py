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
- write brackets as the PTB escapes ``-lrb- -rrb- -lcb- -rcb- -lsb- -rsb-``.
  The official pipeline lowercases *before* its punctuation filter, which
  lists the upper-case escapes, so the brackets survive as words there too;
- every other symbol (``$ % & # + = * /`` standing alone) is its own token.

Tokenizing already-tokenized text (the tokens joined by spaces) returns the
same tokens, so captions that went through the Java tokenizer pass through
unchanged as long as they only contain the forms listed above.

Where the Java tokenizer can differ (none of these occur in typical captions):

- abbreviations with a single period (``mr.``, ``st.``, ``etc.``): Java keeps the
  period on the words in its abbreviation list, here it is always dropped;
- URLs, e-mail addresses and emoticons, which Java keeps whole;
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
_TOKEN = re.compile(
    "|".join([
        r"-(?:lrb|rrb|lcb|rcb|lsb|rsb)-",                  # PTB bracket escapes (re-tokenizing)
        r"(?:[^\W\d_]\.){2,}",                               # acronyms: u.s. a.m.
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
        elif piece == "cannot":
            tokens.extend(["can", "not"])
        elif piece[0].isalnum():
            tokens.extend(_split_clitics(piece))
        elif piece not in DROPPED:
            tokens.append(piece)
    return tokens
