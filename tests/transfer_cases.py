"""Hand-written answers for the transfer set's `cai:` types: (id, kwargs, response, expected strict).

Imported by test_constraints.py (every type needs a passing and a failing case there) and by
test_transfer_types.py."""

TRANSFER_CASES = [
    ("cai:no_letter", {"letter": "z"}, "A calm lake at dawn.", True),
    ("cai:no_letter", {"letter": "z"}, "A ZERO-waste plan.", False),  # either case counts
    ("cai:no_letter", {"letter": "q"}, "123 !!!", False),  # no letters: not a lipogram
    ("cai:max_chars", {"max_chars": 20}, "  Short and sweet.  \n", True),  # outer spaces aside
    ("cai:max_chars", {"max_chars": 10}, "This is far too long.", False),
    ("cai:ascii_only", {}, "Plain text, with (brackets) and 42.", True),
    ("cai:ascii_only", {}, "Caf\u00e9 au lait", False),
    ("cai:ascii_only", {}, "Nice \u2014 dash", False),
    ("cai:max_word_length", {"max_letters": 5}, "The cat sat on a mat.", True),
    ("cai:max_word_length", {"max_letters": 5}, "The elephant sat.", False),
    ("cai:max_word_length", {"max_letters": 3}, "m-o-o-n", True),  # letter runs, not tokens
    ("cai:exclaim_end", {}, 'What a day!"', True),
    ("cai:exclaim_end", {}, "What a day! Truly.", False),
    ("cai:sentences_capitalized", {}, "The sun rose. Birds sang.\n- Then it rained.", True),
    ("cai:sentences_capitalized", {}, "The sun rose. birds sang.", False),
    ("cai:alliteration", {"letter": "s", "min_words": 3}, "Seven silly seals swam.", True),
    ("cai:alliteration", {"letter": "s", "min_words": 3}, "Seven dogs swam.", False),
    ("cai:exact_sentences", {"num_sentences": 2}, "Bees fly. They make honey.", True),
    ("cai:exact_sentences", {"num_sentences": 2}, "Bees fly. They make honey. Yum.", False),
    ("cai:sentence_max_words", {"max_words": 4}, "Bees fly fast. They hum.", True),
    ("cai:sentence_max_words", {"max_words": 4}, "Bees fly fast to the flowers.", False),
    ("cai:max_word_repeats", {"max_repeats": 2}, "The bees and the hive and the honey.", True),
    ("cai:max_word_repeats", {"max_repeats": 2}, "Bees, bees, BEES everywhere.", False),
    ("cai:exact_commas", {"num_commas": 2}, "Red, green, blue.", True),
    ("cai:exact_commas", {"num_commas": 2}, "Red, green and blue.", False),
    ("cai:question_count", {"num_questions": 1}, "Why?? Because it rains.", True),
    ("cai:question_count", {"num_questions": 1}, "Why? How? When?", False),
    ("cai:line_count", {"num_lines": 2}, "one\n\n  \ntwo\n", True),
    ("cai:line_count", {"num_lines": 2}, "one\ntwo\nthree", False),
    ("cai:digit_numbers", {"min_numbers": 2}, "About 1,200 bees in 3.5 days.", True),
    ("cai:digit_numbers", {"min_numbers": 2}, "About a thousand bees in 3 days.", False),
    ("cai:keyword_first_sentence", {"keyword": "garden"}, "My Garden grows. It is big.", True),
    ("cai:keyword_first_sentence", {"keyword": "garden"}, "It is big. My garden grows.", False),
    ("cai:keyword_first_sentence", {"keyword": "garden"}, "Gardens grow. Yes.", False),  # whole word
    ("cai:keyword_last_sentence", {"keyword": "garden"}, "It is big. My garden grows.", True),
    ("cai:keyword_last_sentence", {"keyword": "garden"}, "My garden grows. It is big.", False),
    ("cai:keyword_order", {"first": "rain", "second": "sun"}, "First rain, then sun.", True),
    ("cai:keyword_order", {"first": "rain", "second": "sun"}, "The sun, then rain.", False),
    ("cai:keyword_order", {"first": "rain", "second": "sun"}, "Only rain today.", False),
    ("cai:nth_word", {"position": 2, "word": "really"}, '"It, really, works."', True),
    ("cai:nth_word", {"position": 2, "word": "really"}, "It works really well.", False),
    ("cai:same_first_last_word", {}, "Rain falls, then comes more rain.", True),
    ("cai:same_first_last_word", {}, "Rain falls, then sun.", False),
    ("cai:same_first_last_word", {}, "Rain.", False),  # one word is not a first and a last
    ("cai:acrostic", {"letters": "SUN"}, "* Shining\n* Up high\n* Nearly noon", True),
    ("cai:acrostic", {"letters": "SUN"}, "Shining\nNearly noon\nUp high", False),
    ("cai:acrostic", {"letters": "SUN"}, "Shining\nUp high", False),
    ("cai:labeled_lines", {"labels": ["Pros", "Cons"]}, "**Pros:** cheap\n- cons: slow", True),
    ("cai:labeled_lines", {"labels": ["Pros", "Cons"]}, "Cons: slow\nPros: cheap", False),  # order
    ("cai:labeled_lines", {"labels": ["Pros", "Cons"]}, "Pros:\nCons: slow", False),  # empty label
    ("cai:markdown_headings", {"num_headings": 2}, "# One\ntext\n## Two\nmore", True),
    ("cai:markdown_headings", {"num_headings": 2}, "# One\n#Two\ntext", False),
    ("cai:parenthetical", {}, "Bees (mostly) sleep.", True),
    ("cai:parenthetical", {}, "Bees sleep (1).", False),
    ("cai:quoted_phrases", {"num_quotes": 2}, 'He said "yes" and \u201cno\u201d.', True),
    ("cai:quoted_phrases", {"num_quotes": 2}, 'He said "yes" and no.', False),
    ("cai:step_lines", {"num_steps": 2}, "Step 1: mix.\n**Step 2.** bake.", True),
    ("cai:step_lines", {"num_steps": 2}, "Step 1: mix.\nStep 3: bake.", False),
    ("cai:keyword_caps", {"keyword": "garden"}, "I love my GARDEN.", True),
    ("cai:keyword_caps", {"keyword": "garden"}, "I love my Garden and GARDENS.", False),
    ("cai:spelled_out", {"spell_word": "moon"}, "The M-O-O-N is bright.", True),
    ("cai:spelled_out", {"spell_word": "moon"}, "The moon, m o o n, is bright.", False),
    ("cai:bracketed_keyword", {"keyword": "garden"}, "Visit the [ Garden ] today.", True),
    ("cai:bracketed_keyword", {"keyword": "garden"}, "Visit the (garden) today.", False),
    ("cai:same_first_last_sentence", {}, "Bees are busy. They fly far. **Bees are busy!**", True),
    ("cai:same_first_last_sentence", {}, "Bees are busy. They fly far.", False),
    ("cai:same_first_last_sentence", {}, "Bees are busy.", False),
    ("cai:either_keyword", {"keywords": ["rain", "sun"]}, "The rain came.", True),
    ("cai:either_keyword", {"keywords": ["rain", "sun"]}, "Rain then sun.", False),
    ("cai:either_keyword", {"keywords": ["rain", "sun"]}, "A cloudy day.", False),
]
