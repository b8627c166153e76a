"""Generate gradlab's default word-level corpus, ``gradlab/tasks/data/words.txt``.

A small probabilistic grammar of English, deterministic for a given seed
(Python's ``random.Random``), so the shipped file can be regenerated and
checked::

    .venv/bin/python scripts/make_word_corpus.py            # rewrite the file
    .venv/bin/python scripts/make_word_corpus.py --check    # exit 1 if it differs

The grammar (its lexicon is the tables below, about 700 common word types
plus a long tail of about 1,500 invented names):

* **topics** — every paragraph (one line of the file, 1–5 sentences) keeps
  one of eight topics (the sea, the farm, the bakery, the forest, the market
  town, the school, the mountains, the workshop); the people, things, places,
  verbs and adjectives of a sentence come from its topic (a few from the
  others), so the first words of a sentence predict its last ones;
* **agreement** — a subject is singular or plural, masculine, feminine or
  neuter; present-tense verbs agree with it (``the baker sells`` /
  ``the bakers sell``, ``does`` / ``do``), also across a relative clause
  (``the nets that the old fisherman mends are wet``), and later pronouns
  and possessives agree with it (``the girl lost her book because she …``);
* **tense** — each sentence is in the present or the past, kept across its
  clauses, and its time adverbs fit the tense (``every morning`` with the
  present, ``yesterday`` / ``last winter`` with the past);
* **clauses** — relative clauses (``who …``, ``that …``), subordinate
  clauses (``when``, ``after``, ``before``, ``because``, ``although``),
  coordination (``, and`` / ``, but`` / ``, so``), reported speech
  (``X said that …``), yes/no and ``why`` questions (``?``) and a few
  exclamations (``!``);
* **rare words** — names of people and villages are drawn from about 1,500
  invented names with Zipf-like frequencies, so many occur once or twice:
  the vocabulary cap or minimum count of :class:`gradlab.tasks.WordCorpus`
  turns them into ``<unk>``, as in the notes.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "gradlab" / "tasks" / "data" / "words.txt"
SEED = 20240611
PARAGRAPHS = 2200

# ----------------------------------------------------------------------------- lexicon
# people: (singular, plural, gender of the singular: "m", "f" or "n" — either, drawn per sentence)
# things: (singular, plural)
# verbs: (base, third person singular, past) — transitive, take a thing of the topic
# events: intransitive clauses (singular subject, plural subject are chosen from people)
# places: prepositional phrases
TOPICS = {
    "sea": {
        "people": [("fisherman", "fishermen", "m"), ("sailor", "sailors", "n"), ("captain", "captains", "n"),
                   ("fisherwoman", "fisherwomen", "f"), ("boy", "boys", "m"), ("diver", "divers", "n")],
        "things": [("boat", "boats"), ("net", "nets"), ("sail", "sails"), ("rope", "ropes"), ("fish", "fish"),
                   ("anchor", "anchors"), ("oar", "oars"), ("crab", "crabs"), ("shell", "shells"),
                   ("lantern", "lanterns"), ("map", "maps"), ("barrel", "barrels")],
        "verbs": [("mend", "mends", "mended"), ("pull", "pulls", "pulled"), ("paint", "paints", "painted"),
                  ("tie", "ties", "tied"), ("catch", "catches", "caught"), ("clean", "cleans", "cleaned"),
                  ("sell", "sells", "sold"), ("drag", "drags", "dragged"), ("lose", "loses", "lost"),
                  ("find", "finds", "found")],
        "adjectives": ["wet", "salty", "heavy", "blue", "torn", "old", "long", "silver"],
        "places": ["at the harbour", "on the beach", "near the lighthouse", "on the pier", "by the rocks",
                   "in the bay", "on the deck"],
        "events": [("the tide came in", "the tide comes in"), ("the storm broke", "the storm breaks"),
                   ("the wind rose", "the wind rises"), ("the waves grew high", "the waves grow high"),
                   ("the fog lifted", "the fog lifts")],
    },
    "farm": {
        "people": [("farmer", "farmers", "n"), ("shepherd", "shepherds", "m"), ("milkmaid", "milkmaids", "f"),
                   ("farmhand", "farmhands", "n"), ("girl", "girls", "f"), ("grandfather", "grandfathers", "m")],
        "things": [("cow", "cows"), ("sheep", "sheep"), ("goat", "goats"), ("hen", "hens"), ("egg", "eggs"),
                   ("fence", "fences"), ("field", "fields"), ("cart", "carts"), ("bucket", "buckets"),
                   ("gate", "gates"), ("horse", "horses"), ("plough", "ploughs")],
        "verbs": [("feed", "feeds", "fed"), ("milk", "milks", "milked"), ("count", "counts", "counted"),
                  ("mend", "mends", "mended"), ("lead", "leads", "led"), ("wash", "washes", "washed"),
                  ("sell", "sells", "sold"), ("plough", "ploughs", "ploughed"), ("chase", "chases", "chased"),
                  ("find", "finds", "found")],
        "adjectives": ["brown", "muddy", "young", "fat", "wooden", "broken", "quiet", "old"],
        "places": ["in the barn", "behind the barn", "in the meadow", "by the pond", "on the hill",
                   "near the orchard", "in the yard"],
        "events": [("the rain came", "the rain comes"), ("the sun went down", "the sun goes down"),
                   ("the rooster crowed", "the rooster crows"), ("the hay was dry", "the hay is dry"),
                   ("the frost came", "the frost comes")],
    },
    "bakery": {
        "people": [("baker", "bakers", "n"), ("cook", "cooks", "n"), ("grandmother", "grandmothers", "f"),
                   ("apprentice", "apprentices", "n"), ("woman", "women", "f"), ("man", "men", "m")],
        "things": [("loaf", "loaves"), ("cake", "cakes"), ("oven", "ovens"), ("tray", "trays"),
                   ("pie", "pies"), ("bowl", "bowls"), ("basket", "baskets"), ("roll", "rolls"),
                   ("spoon", "spoons"), ("jar", "jars"), ("tart", "tarts"), ("sack", "sacks")],
        "verbs": [("bake", "bakes", "baked"), ("sell", "sells", "sold"), ("carry", "carries", "carried"),
                  ("fill", "fills", "filled"), ("cut", "cuts", "cut"), ("wash", "washes", "washed"),
                  ("stack", "stacks", "stacked"), ("drop", "drops", "dropped"), ("heat", "heats", "heated"),
                  ("taste", "tastes", "tasted")],
        "adjectives": ["warm", "sweet", "fresh", "golden", "round", "burnt", "small", "white"],
        "places": ["in the kitchen", "at the bakery", "by the oven", "behind the counter", "in the cellar",
                   "at the window", "near the door"],
        "events": [("the dough rose", "the dough rises"), ("the bell rang", "the bell rings"),
                   ("the oven was hot", "the oven is hot"), ("the shop opened", "the shop opens"),
                   ("the flour ran out", "the flour runs out")],
    },
    "forest": {
        "people": [("hunter", "hunters", "n"), ("woodcutter", "woodcutters", "m"), ("ranger", "rangers", "n"),
                   ("child", "children", "n"), ("traveller", "travellers", "n"), ("witch", "witches", "f")],
        "things": [("tree", "trees"), ("axe", "axes"), ("log", "logs"), ("path", "paths"), ("fox", "foxes"),
                   ("deer", "deer"), ("mushroom", "mushrooms"), ("branch", "branches"), ("nest", "nests"),
                   ("berry", "berries"), ("wolf", "wolves"), ("owl", "owls")],
        "verbs": [("cut", "cuts", "cut"), ("follow", "follows", "followed"), ("gather", "gathers", "gathered"),
                  ("watch", "watches", "watched"), ("hear", "hears", "heard"), ("carry", "carries", "carried"),
                  ("find", "finds", "found"), ("climb", "climbs", "climbed"), ("mark", "marks", "marked"),
                  ("track", "tracks", "tracked")],
        "adjectives": ["tall", "dark", "green", "wild", "hidden", "grey", "sharp", "red"],
        "places": ["in the woods", "under the oak", "by the stream", "near the clearing", "on the path",
                   "behind the hut", "in the thicket"],
        "events": [("the owl called", "the owl calls"), ("the leaves fell", "the leaves fall"),
                   ("the night came", "the night comes"), ("the snow melted", "the snow melts"),
                   ("the branches cracked", "the branches crack")],
    },
    "town": {
        "people": [("merchant", "merchants", "n"), ("tailor", "tailors", "m"), ("mayor", "mayors", "n"),
                   ("seller", "sellers", "n"), ("lady", "ladies", "f"), ("stranger", "strangers", "n")],
        "things": [("coin", "coins"), ("coat", "coats"), ("hat", "hats"), ("letter", "letters"),
                   ("cart", "carts"), ("lamp", "lamps"), ("key", "keys"), ("shoe", "shoes"), ("ring", "rings"),
                   ("clock", "clocks"), ("scarf", "scarves"), ("bell", "bells")],
        "verbs": [("buy", "buys", "bought"), ("sell", "sells", "sold"), ("count", "counts", "counted"),
                  ("lose", "loses", "lost"), ("find", "finds", "found"), ("sew", "sews", "sewed"),
                  ("send", "sends", "sent"), ("hide", "hides", "hid"), ("show", "shows", "showed"),
                  ("wrap", "wraps", "wrapped")],
        "adjectives": ["new", "cheap", "golden", "fine", "red", "dusty", "rare", "black"],
        "places": ["in the square", "at the market", "on the bridge", "by the fountain", "in the tavern",
                   "near the church", "at the town hall"],
        "events": [("the clock struck noon", "the clock strikes noon"), ("the market closed", "the market closes"),
                   ("the bells rang", "the bells ring"), ("the lamps were lit", "the lamps are lit"),
                   ("the crowd left", "the crowd leaves")],
    },
    "school": {
        "people": [("teacher", "teachers", "n"), ("pupil", "pupils", "n"), ("student", "students", "n"),
                   ("schoolmaster", "schoolmasters", "m"), ("schoolgirl", "schoolgirls", "f"),
                   ("headmistress", "headmistresses", "f")],
        "things": [("book", "books"), ("pencil", "pencils"), ("desk", "desks"), ("lesson", "lessons"),
                   ("page", "pages"), ("map", "maps"), ("question", "questions"), ("chalk", "chalks"),
                   ("poem", "poems"), ("sum", "sums"), ("slate", "slates"), ("globe", "globes")],
        "verbs": [("read", "reads", "read"), ("write", "writes", "wrote"), ("copy", "copies", "copied"),
                  ("learn", "learns", "learned"), ("forget", "forgets", "forgot"), ("answer", "answers", "answered"),
                  ("lose", "loses", "lost"), ("open", "opens", "opened"), ("check", "checks", "checked"),
                  ("draw", "draws", "drew")],
        "adjectives": ["long", "hard", "easy", "new", "thin", "blank", "short", "strange"],
        "places": ["in the classroom", "at the desk", "in the library", "on the stairs", "in the hall",
                   "by the blackboard", "in the playground"],
        "events": [("the lesson began", "the lesson begins"), ("the bell rang", "the bell rings"),
                   ("the holidays came", "the holidays come"), ("the class was quiet", "the class is quiet"),
                   ("the exam ended", "the exam ends")],
    },
    "mountain": {
        "people": [("climber", "climbers", "n"), ("guide", "guides", "n"), ("herdsman", "herdsmen", "m"),
                   ("hermit", "hermits", "m"), ("mountaineer", "mountaineers", "n"), ("nun", "nuns", "f")],
        "things": [("rope", "ropes"), ("boot", "boots"), ("tent", "tents"), ("stone", "stones"),
                   ("goat", "goats"), ("stick", "sticks"), ("glove", "gloves"), ("bag", "bags"),
                   ("trail", "trails"), ("flag", "flags"), ("rock", "rocks"), ("flower", "flowers")],
        "verbs": [("carry", "carries", "carried"), ("climb", "climbs", "climbed"), ("pack", "packs", "packed"),
                  ("follow", "follows", "followed"), ("lose", "loses", "lost"), ("pitch", "pitches", "pitched"),
                  ("lift", "lifts", "lifted"), ("mark", "marks", "marked"), ("drop", "drops", "dropped"),
                  ("find", "finds", "found")],
        "adjectives": ["steep", "cold", "icy", "narrow", "high", "heavy", "white", "grey"],
        "places": ["on the ridge", "at the summit", "in the valley", "below the glacier", "near the pass",
                   "by the lake", "in the cave"],
        "events": [("the snow fell", "the snow falls"), ("the clouds came down", "the clouds come down"),
                   ("the avalanche started", "the avalanche starts"), ("the sky cleared", "the sky clears"),
                   ("the ice cracked", "the ice cracks")],
    },
    "workshop": {
        "people": [("carpenter", "carpenters", "n"), ("smith", "smiths", "m"), ("potter", "potters", "n"),
                   ("weaver", "weavers", "f"), ("clockmaker", "clockmakers", "n"), ("painter", "painters", "n")],
        "things": [("chair", "chairs"), ("table", "tables"), ("hammer", "hammers"), ("nail", "nails"),
                   ("pot", "pots"), ("wheel", "wheels"), ("board", "boards"), ("box", "boxes"),
                   ("brush", "brushes"), ("blade", "blades"), ("door", "doors"), ("saw", "saws")],
        "verbs": [("build", "builds", "built"), ("fix", "fixes", "fixed"), ("paint", "paints", "painted"),
                  ("sand", "sands", "sanded"), ("polish", "polishes", "polished"), ("shape", "shapes", "shaped"),
                  ("sell", "sells", "sold"), ("break", "breaks", "broke"), ("measure", "measures", "measured"),
                  ("sharpen", "sharpens", "sharpened")],
        "adjectives": ["smooth", "rough", "strong", "crooked", "bright", "wooden", "iron", "small"],
        "places": ["in the workshop", "at the bench", "by the furnace", "in the shed", "near the kiln",
                   "on the floor", "by the wall"],
        "events": [("the fire burned low", "the fire burns low"), ("the glue dried", "the glue dries"),
                   ("the paint was wet", "the paint is wet"), ("the wood split", "the wood splits"),
                   ("the order came", "the order comes")],
    },
}

GENERAL_ADJECTIVES = ["old", "little", "big", "good", "beautiful", "tired", "careful", "lazy", "kind", "proud"]
ADVERBS = ["slowly", "quickly", "carefully", "quietly", "happily", "gladly", "badly", "again", "together"]
NUMBERS = ["two", "three", "four", "five", "six", "seven", "eight", "ten", "twelve", "many", "some", "a few"]
TIME_PRESENT = ["every morning", "every day", "in the morning", "in the evening", "on sundays", "at night",
                "usually", "always", "often", "every week", "in spring", "in winter", "now"]
TIME_PAST = ["yesterday", "last week", "last winter", "that morning", "that night", "the day before",
             "long ago", "once", "in the spring", "after the fair", "last summer", "an hour ago"]
SAID = [("says", "say", "said"), ("thinks", "think", "thought"), ("knows", "know", "knew"),
        ("tells us", "tell us", "told us"), ("hopes", "hope", "hoped")]
SUBORDINATORS = ["when", "after", "before", "because", "although", "while", "as soon as"]
COORD = ["and", "but", "so"]
FEELINGS = [("is happy", "are happy", "was happy", "were happy"), ("is tired", "are tired", "was tired", "were tired"),
            ("is angry", "are angry", "was angry", "were angry"), ("is late", "are late", "was late", "were late"),
            ("is hungry", "are hungry", "was hungry", "were hungry"), ("is proud", "are proud", "was proud", "were proud"),
            ("is busy", "are busy", "was busy", "were busy"), ("is cold", "are cold", "was cold", "were cold")]
INTRANSITIVE = [("sleeps", "sleep", "slept"), ("waits", "wait", "waited"), ("sings", "sing", "sang"),
                ("laughs", "laugh", "laughed"), ("works", "work", "worked"), ("rests", "rest", "rested"),
                ("comes home", "come home", "came home"), ("goes out", "go out", "went out")]

SYLLABLES = ["ma", "ri", "ko", "len", "tas", "bo", "vin", "el", "sa", "dor", "mi", "ra", "thel", "gar", "lu", "ne",
             "fen", "ka", "wil", "os", "bri", "ta", "hal", "ur", "cle", "mon", "zi", "pe", "an", "dra", "rik", "so",
             "val", "ine", "bar", "to", "gwen", "ed", "li", "mar"]
FEMALE_ENDINGS = ["a", "ine", "el", "wen", "is"]
MALE_ENDINGS = ["o", "ik", "an", "ard", "us"]
VILLAGE_ENDINGS = ["ford", "by", "stead", "wick", "holm", "ton", "dale", "mere"]


def _names(rng: random.Random, n: int, endings: list[str]) -> list[str]:
    out, seen = [], set()
    while len(out) < n:
        name = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice([1, 1, 2]))) + rng.choice(endings)
        if name not in seen and 4 <= len(name) <= 11:
            seen.add(name)
            out.append(name.capitalize())
    return out


class Grammar:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.female = _names(self.rng, 500, FEMALE_ENDINGS)
        self.male = _names(self.rng, 500, MALE_ENDINGS)
        self.villages = _names(self.rng, 500, VILLAGE_ENDINGS)

    # -- helpers
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def zipf(self, items: list[str]) -> str:
        """Zipf-like: item i has weight (i+1)^-0.8."""
        r = self.rng.random() * sum((i + 1) ** -0.8 for i in range(len(items)))
        for i, item in enumerate(items):
            r -= (i + 1) ** -0.8
            if r <= 0:
                return item
        return items[-1]

    def topic_of(self, topic: str) -> dict:
        """The sentence's topic, sometimes another one (so topics mix a little)."""
        return TOPICS[self.rng.choice(list(TOPICS))] if self.chance(0.08) else TOPICS[topic]

    # -- phrases: each returns (words, number "sg"/"pl", gender)
    def person(self, t: dict, allow_name: bool = True):
        if allow_name and self.chance(0.2):
            female = self.chance(0.5)
            name = self.zipf(self.female if female else self.male)
            gender = "f" if female else "m"
            roles = [sg for sg, _, g in t["people"] if g in (gender, "n")]
            if roles and self.chance(0.3):
                return f"{name} the {self.rng.choice(roles)}", "sg", gender
            return name, "sg", gender
        sg, pl, g = self.rng.choice(t["people"])
        adj = f"{self.rng.choice(GENERAL_ADJECTIVES)} " if self.chance(0.25) else ""
        if self.chance(0.35):
            det = self.rng.choice(["the", "the", "some", "two", "three", "our", "my"])
            return f"{det} {adj}{pl}", "pl", "n"
        det = self.rng.choice(["the", "the", "the", "a", "our", "my", "an old" if not adj else "the"])
        if det == "an old":
            adj = ""
        if det == "a" and (adj or sg)[0] in "aeiou":
            det = "an"
        if g == "n":  # either; later pronouns and possessives keep to the choice
            g = self.rng.choice("mf")
        return f"{det} {adj}{sg}", "sg", g

    def thing(self, t: dict, owner=None):
        sg, pl = self.rng.choice(t["things"])
        plural = self.chance(0.4)
        noun = pl if plural else sg
        adj = f"{self.rng.choice(t['adjectives'] + GENERAL_ADJECTIVES[:3])} " if self.chance(0.4) else ""
        if owner is not None and self.chance(0.4):
            det = possessive(*owner)
        elif plural:
            det = self.rng.choice(["the", "the", "", ""] + NUMBERS)
        else:
            det = self.rng.choice(["the", "the", "a", "this", "that"])
            if det == "a" and (adj or noun)[0] in "aeiou":
                det = "an"
        return " ".join(w for w in (det, adj.strip(), noun) if w), "pl" if plural else "sg"

    def place(self, t: dict) -> str:
        if self.chance(0.12):
            return f"{self.rng.choice(['near', 'in', 'outside', 'beyond'])} {self.zipf(self.villages)}"
        return self.rng.choice(t["places"])

    def time(self, tense: str) -> str:
        return self.rng.choice(TIME_PAST if tense == "past" else TIME_PRESENT)

    # -- clauses
    def verb(self, t: dict, number: str, tense: str) -> str:
        base, s3, past = self.rng.choice(t["verbs"])
        return past if tense == "past" else (s3 if number == "sg" else base)

    def relative(self, t: dict, number: str, tense: str) -> str:
        """A relative clause on a person of ``number``: its verb agrees with the head noun."""
        if self.chance(0.5):
            v = self.verb(t, number, tense)
            obj, _ = self.thing(t)
            return f"who {v} {obj}"
        other, n2, _ = self.person(t, allow_name=False)
        return f"whom {other} {self.verb(t, n2, tense)}" if self.chance(0.3) else \
            f"who {self.feeling(number, tense)}"

    def feeling(self, number: str, tense: str) -> str:
        f = self.rng.choice(FEELINGS)
        return f[{("sg", "present"): 0, ("pl", "present"): 1, ("sg", "past"): 2, ("pl", "past"): 3}[number, tense]]

    def clause(self, t: dict, tense: str, subject=None, rel: bool = True) -> tuple[str, tuple]:
        """subject verb object [place] [adverb]: returns the words and the subject's (number, gender)."""
        if subject is None:
            subj, number, gender = self.person(t)
            if rel and self.chance(0.18):
                subj = f"{subj} {self.relative(t, number, tense)}"
        else:
            subj, number, gender = subject
        r = self.rng.random()
        if r < 0.72:
            v = self.verb(t, number, tense)
            obj, _ = self.thing(t, owner=(number, gender))
            if self.chance(0.12):  # an object relative clause: "the nets that the old fisherman mends"
                other, n2, _ = self.person(t, allow_name=False)
                obj = f"{obj} that {other} {self.verb(t, n2, tense)}"
            words = [subj, v, obj]
        elif r < 0.86:
            base = self.rng.choice(INTRANSITIVE)
            words = [subj, base[2] if tense == "past" else (base[0] if number == "sg" else base[1])]
        else:
            words = [subj, self.feeling(number, tense)]
        if self.chance(0.45):
            words.append(self.place(t))
        if r < 0.86 and self.chance(0.15):
            words.append(self.rng.choice(ADVERBS))
        return " ".join(words), (number, gender)

    def event(self, t: dict, tense: str) -> str:
        past, present = self.rng.choice(t["events"])
        return past if tense == "past" else present

    def sentence(self, topic: str) -> str:
        t = self.topic_of(topic)
        tense = "past" if self.chance(0.55) else "present"
        r = self.rng.random()
        end = "."
        if r < 0.30:  # simple clause, maybe with a time adverb in front or at the end
            body, _ = self.clause(t, tense)
            if self.chance(0.4):
                when = self.time(tense)
                body = f"{when}, {body}" if self.chance(0.5) else f"{body} {when}"
        elif r < 0.48:  # subordinate clause first or last
            sub = self.rng.choice(SUBORDINATORS)
            first = self.event(t, tense) if self.chance(0.5) else self.clause(t, tense, rel=False)[0]
            main, _ = self.clause(t, tense)
            body = f"{sub} {first}, {main}" if self.chance(0.5) else f"{main} {sub} {first}"
        elif r < 0.66:  # coordination, the second subject a pronoun that agrees with the first
            first, (number, gender) = self.clause(t, tense)
            pron = pronoun(number, gender) if self.chance(0.6) else None
            second, _ = self.clause(t, tense, subject=(pron, number, gender) if pron else None, rel=False)
            body = f"{first}, {self.rng.choice(COORD)} {second}"
        elif r < 0.78:  # reported speech
            speaker, number, _ = self.person(t)
            said = self.rng.choice(SAID)
            verb = said[2] if tense == "past" else (said[0] if number == "sg" else said[1])
            inner, _ = self.clause(t, tense)
            body = f"{speaker} {verb} that {inner}"
        elif r < 0.90:  # questions: do/does agree with the subject, did in the past
            subj, number, gender = self.person(t)
            base, _, _ = self.rng.choice(t["verbs"])
            aux = "did" if tense == "past" else ("does" if number == "sg" else "do")
            obj, _ = self.thing(t, owner=(number, gender))
            wh = self.rng.choice(["why ", "where ", "when ", ""]) if self.chance(0.6) else ""
            body = f"{wh}{aux} {subj} {base} {obj}"
            if not wh and self.chance(0.4):
                body += f" {self.place(t)}"
            end = "?"
        else:  # two clauses about one person; sometimes an exclamation
            subj = self.person(t)
            first, (number, gender) = self.clause(t, tense, subject=subj)
            second, _ = self.clause(t, tense, subject=(pronoun(number, gender), number, gender), rel=False)
            body = f"{first} {self.rng.choice(SUBORDINATORS[:5])} {second}"
            if self.chance(0.2):
                end = "!"
        body = body.strip()
        return body[0].upper() + body[1:] + end

    def paragraph(self) -> str:
        topic = self.rng.choice(list(TOPICS))
        n = self.rng.choice([1, 1, 2, 2, 3, 3, 4, 5])
        return " ".join(self.sentence(topic) for _ in range(n))


def pronoun(number: str, gender: str) -> str:
    return "they" if number == "pl" else {"m": "he", "f": "she"}[gender]


def possessive(number: str, gender: str) -> str:
    return "their" if number == "pl" else {"m": "his", "f": "her"}[gender]


def generate(seed: int = SEED, paragraphs: int = PARAGRAPHS) -> str:
    """The corpus text: one paragraph of one topic per line."""
    g = Grammar(seed)
    return "\n".join(g.paragraph() for _ in range(paragraphs)) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing it")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    text = generate()
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'differs from the generator'}")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {text.count(chr(10))} lines, {len(text.encode('utf-8'))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
