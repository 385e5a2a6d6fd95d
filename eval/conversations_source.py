"""Hand-written multi-session conversations for the conversational eval set.

Each conversation is a script. In it:
- `== YYYY-MM-DD` starts a session on that date;
- `A: text` / `B: text` is one turn by the first / second speaker;
- `[image: caption]` inside a turn is a picture shared with it;
- `#tag` at the end of a turn names it, so that questions can cite it as evidence;
- `~N` stands for N turns of small talk, drawn (seeded) from SMALL_TALK below.

`eval/make_conversations.py` turns these into `eval/conversations.json`.
Questions: (kind, question, [tags]) with kind one of single, when, multihop, inference.
"""

# Small talk with no facts in it, said by either speaker. Some lines reuse everyday words
# (work, weekend, food, family) so that they compete with the real answers.
SMALL_TALK = """
Haha, that's so true.
Oh wow, I had no idea!
That sounds amazing, honestly.
I know, right? Time flies.
Same here, this week has been a blur.
Ugh, Mondays. Don't get me started.
Totally get that.
Lol, classic.
That's really sweet of you to say.
Thanks, I appreciate it a lot.
Aw, that means so much.
No worries at all!
Sounds like a plan.
For sure, let's do it.
Hmm, I hadn't thought of it that way.
Fair point!
That's wild.
Yeah, it was a long day but a good one.
How's everything on your end?
What have you been up to lately?
Anything fun planned for the weekend?
Not much, just trying to catch up on sleep.
Work has been nonstop, but I'm hanging in there.
I'm just glad the week is almost over.
The weather has been so weird lately.
It rained all day here, I stayed in with a blanket.
It's finally getting warmer, I love it.
I've been drinking way too much coffee this week.
I should really go to bed earlier, lol.
Honestly, I needed to hear that today.
You always know what to say.
That's the spirit!
Keep me posted, okay?
I will, promise.
Can't wait to hear how it goes.
Good luck, you've got this!
Fingers crossed for you.
Oh, that's a relief.
I'm so happy for you!
That's a big step, congrats.
That must have been tough.
I'm sorry you had to deal with that.
Take care of yourself, seriously.
Sending good vibes your way.
Ha! I can totally picture that.
You're hilarious.
That made me laugh out loud.
Right? Family can be a lot sometimes.
Food always makes things better.
I've been meaning to ask you about that.
Wait, tell me more!
What made you decide that?
How did that feel?
Was it as good as you hoped?
Did it go the way you expected?
Sounds like you had a full week.
I hear you. Some days are just like that.
I'm proud of you, you know.
It's the little things, isn't it?
Life's been busy, but in a good way.
We should catch up more often.
Talk soon!
Gotta run, but this was nice.
Bye for now, have a great evening!
Night! Talk tomorrow.
Hey! Good to hear from you.
Hi! How's it going?
Hey, long time no chat!
Morning! Hope your day's off to a good start.
I've been thinking about what you said last time.
Oh yeah, I remember you mentioning that.
Same as always, really. Nothing new.
I keep saying I'll get organised, and then I don't.
Wow, you've been busy.
That's such a nice way to spend a Sunday.
I wish I had your energy, honestly.
My phone has been acting up all week.
I binge-watched a whole season of something silly last night.
Ha, I'll take that as a compliment.
It's been one of those weeks.
Honestly, same.
Oh no, that's annoying.
Nice! That's great news.
Well, that's one way to do it.
I totally forgot about that!
You'll have to show me sometime.
I love that for you.
Not gonna lie, I'm a little jealous.
Anyway, enough about me. How are you?
Things are pretty good, can't complain.
Hope you get some rest soon.
"""

# Everyday chatter with some content (no pets, partners or jobs named, so it fits either
# speaker): the distractors that share words with questions without answering them.
CHATTER = """
I tried the new ramen place near the station. The broth was good, the noodles not so much.
My landlord finally fixed the heating after three weeks of emails.
I've been watching a cooking show where they bake bread in a wood oven.
The farmers market had the first strawberries of the season today.
I repainted the hallway last weekend. It's a kind of sage green now.
My neighbour's kids set up a lemonade stand. I bought two cups to be nice.
Traffic was terrible this morning, there was an accident on the bridge.
I finally cleaned out my closet and donated three bags of clothes.
I went to a friend's birthday dinner at an Italian place. Way too much pasta.
My car needed new brakes, so that was an expensive week.
I started doing a crossword every morning with my coffee.
There was a thunderstorm last night and the power went out for an hour.
I watched a documentary about octopuses. They're so weird and smart.
I've been trying to drink more water. I bought one of those giant bottles.
My cousin is visiting next month and wants to see every museum in town.
I got a parking ticket outside the dentist's office, of all places.
The library near me is doing a used book sale this weekend.
I made soup from whatever was left in the fridge. Surprisingly good.
My phone fell in a puddle, but the rice trick actually worked.
I went for a long walk by the river after dinner. Needed the fresh air.
I tried yoga on a video and could not touch my toes at all.
Our building is getting new elevators, so I take the stairs for a month.
I burned the pancakes this morning. Breakfast was toast instead.
A friend invited me to a trivia night. We came second to last.
I'm rewatching an old sitcom from when I was a kid. It holds up, mostly.
I finally fixed the wobbly kitchen table with a folded napkin.
The coffee shop on my corner closed. I'm in mourning.
I spent Saturday helping a friend move a couch up four flights of stairs.
My sister sent me a photo of her new haircut. It's very short!
I bought a plant for my desk. Let's see how long I keep it alive.
The movie theater near me shows old classics on Wednesdays now.
I tried making sushi at home. It looked sad but tasted fine.
My internet was down all morning, so I actually read a book.
I ran into an old classmate at the grocery store. So awkward.
I've been going to bed with a podcast on. I never hear the end of an episode.
There's a street festival downtown this weekend with live music.
I signed up for a newsletter about local events, and now I get three emails a day.
I had the best tacos from a food truck by the park.
I spent the whole evening trying to assemble a bookshelf. Two screws left over.
My mom called to ask how to send a photo on her phone. Again.
I found an old box of letters from summer camp in the attic.
I started keeping a little journal before bed.
The snow finally melted and now everything is mud.
I went to a pottery sale at the community center and bought two mugs.
I've been trying to cook one new recipe a week.
It was so hot today that I did nothing but sit in front of the fan.
I saw a double rainbow on my way home. Had to pull over to look.
My friend got married in a barn last weekend. It was charming.
I accidentally dyed all my white shirts pink.
I finally watched that movie everyone kept recommending. It was fine?
I went to the beach for the afternoon. The water was freezing.
My dentist says I need to floss more. Every dentist says that.
I ordered way too much takeout this week. Back to cooking tomorrow.
The fair is in town, I ate a funnel cake the size of my head.
My upstairs neighbour plays piano at night. He's actually pretty good.
I donated blood for the first time today. They gave me cookies.
I got lost trying to find a new hiking trail. Ended up at a gas station.
We had a fire drill at the office and stood in the rain for twenty minutes.
I tried a spin class and I can't feel my legs.
My old laptop finally died, so I'm shopping for a new one.
I helped my uncle paint his fence. He paid me in barbecue.
I booked a dentist appointment I've been avoiding for a year.
I've been learning to juggle from videos. I'm up to three balls, badly.
My favourite band announced a tour, but tickets sold out in minutes.
I went to a wedding fair with a friend who's planning hers. So many cakes.
I planted some herbs on my windowsill. Basil and mint so far.
"""

NADIA_TOM = {
    "user_id": "conv_nadia_tom",
    "speakers": ("Nadia", "Tom"),
    "script": """
== 2025-01-12
A: Hey Tom! Happy new year! How were the holidays?
B: Happy new year, Nadia! Pretty quiet. I spent most of it in the garage working on the old motorbike I bought in November. #bike1
A: Wait, you bought a motorbike? You never told me!
B: Haha, it's a 1978 Honda that barely runs. I'm restoring it piece by piece. [image: a rusty red vintage motorcycle in a garage] #bike2
~3
A: Big news on my side: I finally adopted a dog from the shelter! His name is Biscuit. [image: a scruffy brown terrier mix sitting on a couch] #dog1
B: Oh my gosh, he's adorable! What breed is he?
A: The shelter thinks he's a terrier mix, about two years old. He's a little nervous around men, so we're taking it slow. #dog2
~3
B: How's the design studio treating you?
A: Busy. I'm redoing the branding for a local brewery, logos, labels, the whole thing. It's my biggest client so far. #brewery1
B: That's huge! You've always been amazing at logos.
~4
== 2025-01-29
B: Hey Nadia, how's Biscuit settling in?
A: So much better! He finally let my brother pet him. And he sleeps on my feet while I work. #dog3
~3
B: I had a rough week at school. Two of my chemistry classes had exams on the same day and I graded until midnight. #teach1
A: Ugh, teachers don't get enough credit. What grade do you teach again?
B: Eleventh grade mostly, plus one AP class. The AP kids are great though, they asked me to start a science club. #teach2
~3
A: I signed up for a half marathon in May! Someone please remind me why. #run1
B: Haha, because you're secretly competitive. Which one?
A: The Riverside Half, on May 18th. I'm doing three runs a week for now. #run2
~4
B: Also, my sister Emma got engaged over the holidays! #emma1
A: Aww, tell her congrats from me!
~3
== 2025-02-16
A: Tom! Guess who ran eight miles today without stopping? [image: a running watch showing 8.02 miles] #run3
B: No way, that's incredible! Your knee is holding up?
A: Mostly. It gets a bit sore after long runs, so I bought proper running shoes. #run4
~3
B: I finally got the bike's engine to start. It sounded like a dying goose, but it started! #bike3
A: Hahaha, progress is progress. Did you have to replace a lot?
B: The carburetor and the spark plugs. A guy on a forum talked me through it. #bike4
~4
A: The brewery loved the logo, by the way. They're putting it on cans next month. [image: a beer can mockup with a fox logo] #brewery2
B: That's so cool, I'll have to buy a six-pack just for the art.
~3
B: Emma asked me to give a speech at the wedding. I'm terrified of public speaking. #emma2
A: You talk in front of teenagers every day!
B: That's different, teenagers don't cry at weddings. #emma3
~3
== 2025-03-08
B: Hey! The science club had its first meeting. Twelve kids showed up. #teach3
A: That's awesome! What did you do?
B: We made elephant toothpaste. It went everywhere. [image: a foam eruption spilling over a lab bench] #teach4
~3
A: I've started taking guitar lessons on Thursday evenings. My fingers hurt so much. #guitar1
B: Ooh, acoustic or electric?
A: Acoustic. I want to be able to play songs around a campfire this summer. #guitar2
~4
A: Also I'm planning a trip to Japan in October! Kyoto and Tokyo, maybe Osaka. #japan1
B: That's been on your list forever.
A: Since I was fifteen. I'm saving a bit from every paycheck. #japan2
~4
B: How's Biscuit?
A: He learned to sit and shake. He's still scared of the vacuum cleaner though. #dog4
~3
== 2025-04-02
A: Hi Tom, rough day. My grandmother fell and broke her hip. #grandma1
B: Oh no, Nadia, I'm so sorry. Is she okay?
A: She had surgery yesterday and they say it went well, but she'll need a few months of rehab. I'm driving up to see her this weekend. #grandma2
~3
B: I started birdwatching, if you can believe it. My neighbour lent me his binoculars. #birds1
A: Haha, that's the most relaxing hobby I can imagine for you.
B: I saw a pileated woodpecker yesterday! It was huge. [image: a large black woodpecker with a red crest on a tree trunk] #birds2
~4
A: Running update: my knee started hurting again, so the physio gave me exercises. #run5
B: Don't push it too hard before the race.
~3
B: I'm moving apartments next month. Rent went up again, so I found a place closer to school. #move1
A: Oh nice, no more long commute!
B: Exactly, I'll be able to walk to work. #move2
~4
== 2025-05-20
A: I DID IT! I finished the half marathon in 2 hours and 4 minutes! [image: Nadia holding a finisher medal at the finish line] #run6
B: NADIA! That's amazing! I'm so proud of you!
A: My knee was fine, the physio exercises really worked. I cried a little at the finish. #run7
~3
B: The move is done. My new place has a balcony, so I hung a bird feeder. #move3
A: Of course you did, haha.
B: A pair of cardinals visits every morning. [image: two red cardinals on a bird feeder on a balcony] #birds3
~4
A: Grandma is walking with a walker now. She keeps asking about Biscuit, so I brought him to visit her. #grandma3
B: That's so sweet. I bet she loved that.
~3
B: Emma's wedding is in three weeks. Still working on that speech. #emma4
A: Want to practice it on me?
~3
== 2025-06-15
B: The wedding was beautiful. I gave the speech and only stumbled once. #emma5
A: I knew you'd nail it! What did you talk about?
B: Mostly about how Emma used to boss me around as a kid, and how she finally found someone who can keep up with her. People laughed. #emma6
~4
A: I can play three songs on guitar now! Wonderwall, obviously. #guitar3
B: Haha, the law requires it.
~3
A: The brewery asked me to design their whole summer festival poster. I'm going to be paid properly this time. #brewery3
B: Look at you, building a real business.
~3
B: I rode the motorbike to school on the last day of term. The kids lost their minds. [image: the restored red motorcycle parked outside a school] #bike5
A: It's finished?!
B: Finished enough. It took seven months. #bike6
~4
== 2025-08-03
A: Camping trip with my cousins last weekend! I played guitar by the fire like I said I would. [image: a campfire at night with a guitar leaning on a log] #guitar4
B: Dream achieved! How did it go?
A: Everyone sang along. Biscuit hid in the tent the whole time, lol. #dog5
~4
B: I'm taking a summer course on teaching with lab simulations. Going back to class is weird. #teach5
A: Are you going to use it with the science club?
B: That's the plan, especially for chemistry experiments we can't do safely at school. #teach6
~3
A: Japan is booked! I leave October 9th. Two weeks. #japan3
B: Ahh! What's first on the list?
A: A pottery workshop in Kyoto and as many temples as my legs can handle. #japan4
~4
B: I saw a bald eagle at the lake yesterday, my first one ever. #birds4
A: Wow, Tom the birdwatcher is now a real thing.
~3
== 2025-10-30
A: I'm back from Japan! Jet lag is brutal. #japan5
B: Welcome back! How was it?
A: Incredible. The pottery workshop was my favourite part, I made a little tea bowl. [image: a small handmade green tea bowl] #japan6
~3
A: And I found out I got a new client while I was away, a bakery that wants a full rebrand. #bakery1
B: Your design business is really taking off.
~3
B: Grandma update? I remember she was doing rehab.
A: She's walking on her own now, just a cane for long walks. She's already bossing everyone around again. #grandma4
~3
B: I'm thinking about running the Riverside Half next year. You inspired me. #run8
A: YES. I'll train with you!
~4
""",
    "questions": [
        ("single", "What breed is Nadia's dog?", ["dog1", "dog2"]),
        ("single", "What is Tom restoring in his garage?", ["bike1", "bike2"]),
        ("single", "What subject does Tom teach?", ["teach1"]),
        ("single", "What did the science club make at its first meeting?", ["teach4"]),
        ("single", "What instrument is Nadia learning?", ["guitar1", "guitar2"]),
        ("single", "How fast did Nadia finish her race?", ["run6"]),
        ("single", "Which bird did Tom see for the first time at the lake?", ["birds4"]),
        ("single", "What did Nadia make in Kyoto?", ["japan6"]),
        ("single", "Why did Tom move apartments?", ["move1"]),
        ("when", "When did Nadia bring home her new pet?", ["dog1"]),
        ("when", "When did Tom first get his old Honda running?", ["bike3"]),
        ("when", "When did Nadia's grandma have her fall?", ["grandma1"]),
        ("when", "When did Tom take up watching birds?", ["birds1"]),
        ("when", "When was Emma's wedding?", ["emma5"]),
        ("when", "When did Nadia go camping with her cousins?", ["guitar4"]),
        ("when", "When did Nadia return from her trip to Asia?", ["japan5"]),
        ("multihop", "What hobbies has Tom picked up this year?", ["bike1", "birds1"]),
        (
            "multihop",
            "What design work has Nadia done for clients?",
            ["brewery1", "brewery3", "bakery1"],
        ),
        ("multihop", "How did Nadia's knee affect her running?", ["run4", "run5", "run7"]),
        (
            "multihop",
            "How has Nadia's grandmother's recovery gone?",
            ["grandma2", "grandma3", "grandma4"],
        ),
        ("multihop", "What has Tom done with his science club?", ["teach3", "teach4", "teach6"]),
        ("multihop", "Which birds has Tom seen?", ["birds2", "birds3", "birds4"]),
        (
            "inference",
            "Would Tom likely enjoy a visit to a nature reserve?",
            ["birds1", "birds2", "birds4"],
        ),
        ("inference", "Is Nadia likely to be self-employed?", ["brewery1", "brewery3", "bakery1"]),
        ("inference", "Would Biscuit probably enjoy a loud party?", ["dog2", "dog4", "dog5"]),
        ("inference", "Is Tom likely to sign up for a race next year?", ["run8"]),
        ("inference", "Does Tom get nervous speaking to adults?", ["emma2", "emma3"]),
        (
            "inference",
            "Would Nadia likely be interested in a ceramics class at home?",
            ["japan4", "japan6"],
        ),
    ],
}

ROSA_DEVIN = {
    "user_id": "conv_rosa_devin",
    "speakers": ("Rosa", "Devin"),
    "script": """
== 2024-09-03
A: Devin! How's grad school so far?
B: Hey Rosa! Exhausting but fun. My advisor wants me studying coral bleaching for my thesis. #coral1
A: So you get to dive all the time?
B: I wish, mostly I stare at temperature data. But there's a research cruise in the spring. #cruise1
~3
A: I have news: the bakery is finally open! We had a line out the door on day one. [image: a small bakery storefront with a line of people] #bakery1
B: Rosa!! That's huge! What sold out first?
A: The cardamom buns, by 10am. My grandmother's recipe. #bakery2
~4
B: I joined a band, by the way. I play drums. We're terrible but loud. #band1
A: Hahaha, your poor neighbours.
~4
== 2024-09-28
A: I started volunteering at the food bank on Tuesdays. We donate the bread we don't sell. #foodbank1
B: That's such a good idea. Nothing goes to waste.
A: Exactly, and the people there are lovely. #foodbank2
~3
B: I adopted a cat! She's a grey tabby, and I named her Pebble. [image: a grey tabby cat curled up on a stack of textbooks] #cat1
A: Pebble! Perfect name. Is she friendly?
B: She bites my toes at 5am, so... sort of. #cat2
~4
A: My abuela hasn't been feeling well. The doctors are running tests. #abuela1
B: I'm sorry, Rosa. Are you close with her?
A: Very. She taught me to bake. I'm visiting her every Sunday now. #abuela2
~3
B: Band update: we have a name. We're called The Low Tides. #band2
A: That's so marine biologist of you, lol.
~3
== 2024-10-20
B: I broke my wrist. Fell off my bike on the way to the lab. #wrist1
A: Oh no! Are you okay?? Can you still play drums?
B: Not for six weeks. The band is furious, haha. I have a purple cast. [image: a forearm in a purple cast covered in signatures] #wrist2
~3
A: The bakery got a review in the city paper! They called my sourdough "the best in town". #bakery3
B: That's amazing, you deserve it.
~4
A: Abuela's tests came back, it's her heart. She's starting medication and needs to rest a lot. #abuela3
B: I hope the medication helps. Give her my best.
~3
B: Pebble knocked my coffee onto my laptop. I lost a week of thesis work. #cat3
A: NOOO. Please tell me you had a backup.
B: Half of it. Lesson learned. #cat4
~4
== 2024-11-24
A: I signed up for salsa classes with my cousin. I have two left feet. #salsa1
B: That sounds like so much fun though.
A: It is! Thursdays at a little studio downtown. The teacher is very patient. #salsa2
~3
B: Cast is off! My wrist is weak but I'm back on the drums slowly. #wrist3
A: Yay! The Low Tides return!
~3
A: We're doing a Thanksgiving pie drive at the bakery. Every pie bought means one donated to the food bank. #foodbank3
B: Rosa, you're basically a saint.
A: Ha, I just like pie. #foodbank4
~4
B: My thesis proposal defense is in two weeks. I'm nervous. #thesis1
A: You know coral better than anyone. You'll crush it.
~3
== 2025-01-18
B: I passed my proposal defense! They only asked me to change one chapter. #thesis2
A: I knew it! Congrats, Dr. Devin in training.
~3
A: Abuela is doing better. She came to the bakery and supervised me making her buns. [image: an elderly woman in an apron next to a tray of cardamom buns] #abuela4
B: That's so heartwarming.
A: She said I use too much butter. She's definitely feeling better. #abuela5
~4
B: The Low Tides are playing our first real gig next month, at a bar called The Anchor. #band3
A: I'm coming! I'll bring the whole salsa class.
~3
A: I'm thinking about opening a second location. A bigger kitchen would let us do wholesale. #bakery4
B: Whoa, expansion! Scary but exciting.
~4
== 2025-03-02
B: The gig went great! Forty people came, and someone asked for our demo. [image: a band playing on a small bar stage] #band4
A: It was so good! My cousin hasn't stopped talking about the drummer, lol.
~3
A: Salsa update: we performed at the studio's showcase. I only stepped on my partner's foot twice. #salsa3
B: That's a win in my book.
~3
B: I leave for the research cruise in two weeks. Three weeks at sea, no internet. #cruise2
A: Who's taking care of Pebble?
B: My roommate. I left him a very long list of instructions. #cat5
~4
A: We found a space for the second bakery! It's an old diner on Elm Street. #bakery5
B: Perfect, diners have great kitchens.
~3
== 2025-04-15
B: I'm back from the cruise! We sampled corals at twelve reef sites. I got so seasick the first week. [image: a research ship on a blue ocean] #cruise3
A: Welcome back! Seasick for a week sounds miserable.
B: It was, but seeing the reefs was worth it. Some of them were completely white. #cruise4
~3
A: The food bank asked me to join their board. I said yes. #foodbank5
B: Of course they did. You've been there every Tuesday for months.
~4
A: Abuela turns ninety next month. We're throwing her a party at the bakery. #abuela6
B: Ninety! I'd love to come if that's okay.
A: Of course, she asks about "the drummer boy" all the time. #abuela7
~4
== 2025-06-08
A: The second location opened last weekend! [image: a bakery counter with fresh bread in an old diner] #bakery6
B: Two bakeries! You're an empire.
A: Wholesale orders started too. Three coffee shops buy our croissants now. #bakery7
~3
B: I'm presenting my cruise results at a conference in Hawaii in August. #conf1
A: Hawaii! Poor you, having to go to a conference there.
B: I know, tough life. I'll try to squeeze in some snorkelling. #conf2
~4
A: Abuela's party was perfect. She danced salsa with me! Ninety years old! [image: an elderly woman dancing with a younger woman in a decorated bakery] #abuela8
B: That's the best thing I've heard all year.
~3
B: Pebble figured out how to open the kitchen cabinet. Nothing is safe. #cat6
A: Hahaha, she's smarter than both of us.
~4
""",
    "questions": [
        ("single", "What is Devin studying for his thesis?", ["coral1"]),
        ("single", "What sold out first on the bakery's opening day?", ["bakery2"]),
        ("single", "What instrument does Devin play in the band?", ["band1"]),
        ("single", "What is the name of Devin's band?", ["band2"]),
        ("single", "What is Devin's cat called?", ["cat1"]),
        ("single", "How did Devin break his wrist?", ["wrist1"]),
        ("single", "What health problem does Rosa's grandmother have?", ["abuela3"]),
        ("single", "Where did the band play its first gig?", ["band3"]),
        ("single", "Where is the second bakery location?", ["bakery5"]),
        ("when", "When did Rosa open the bakery?", ["bakery1"]),
        ("when", "When did Devin get Pebble?", ["cat1"]),
        ("when", "When did Devin have his bike accident?", ["wrist1"]),
        ("when", "When did Rosa start learning to dance?", ["salsa1"]),
        ("when", "When did Devin pass his proposal defense?", ["thesis2"]),
        ("when", "When did Devin get back from the research cruise?", ["cruise3"]),
        ("when", "When did the second bakery open?", ["bakery6"]),
        (
            "multihop",
            "What has Rosa done for the food bank?",
            ["foodbank1", "foodbank3", "foodbank5"],
        ),
        ("multihop", "What trouble has Pebble caused?", ["cat2", "cat3", "cat6"]),
        (
            "multihop",
            "How has Rosa's abuela's health changed over time?",
            ["abuela1", "abuela3", "abuela4", "abuela5"],
        ),
        (
            "multihop",
            "How has Rosa grown her bakery business?",
            ["bakery4", "bakery5", "bakery6", "bakery7"],
        ),
        ("multihop", "What happened during the research cruise?", ["cruise3", "cruise4"]),
        ("multihop", "What has happened with Devin's band?", ["band2", "band3", "band4"]),
        (
            "inference",
            "Would Rosa likely support a charity that fights hunger?",
            ["foodbank1", "foodbank5"],
        ),
        ("inference", "Is Devin likely comfortable on boats?", ["cruise3"]),
        ("inference", "Does Rosa's grandmother enjoy dancing?", ["abuela8"]),
        ("inference", "Why might Devin worry about climate change?", ["coral1", "cruise4"]),
        ("inference", "Would Devin keep food in a cabinet his pet can't reach?", ["cat6"]),
        (
            "inference",
            "Is Rosa's bakery likely doing well financially?",
            ["bakery3", "bakery6", "bakery7"],
        ),
    ],
}

LENA_AMIR = {
    "user_id": "conv_lena_amir",
    "speakers": ("Lena", "Amir"),
    "script": """
== 2025-02-02
B: Hey Lena, how's the writing going?
A: Slowly! I'm about forty pages into the novel. It's a mystery set on a lighthouse island. #novel1
B: A lighthouse mystery, I love it already.
~3
B: I started a vegetable garden in the backyard. Well, I started planning it. Tomatoes, peppers, zucchini. #garden1
A: Amir the farmer! When do you plant?
B: Seedlings go in the window now, outside in May. [image: seedling trays on a sunny windowsill] #garden2
~4
A: I haven't been sleeping well. I lie awake until 3am most nights. #sleep1
B: That's rough. Stress?
A: Probably the book, and the deadline for the writing contest in April. #sleep2
~3
B: I'm coaching my son Karim's soccer team this season. Eight-year-olds, total chaos. #soccer1
A: That sounds adorable and exhausting.
~4
== 2025-02-23
A: I painted my first watercolour in years. It's the lighthouse from my book. [image: a watercolour painting of a lighthouse on a rocky coast] #paint1
B: That's beautiful! You should put it on the cover.
~3
B: Our fire station did a big training drill this week. Smoke everywhere, and I lost my voice yelling. #fire1
A: Firefighter life. Do you ever get scared?
B: Only the first few years. Now it's mostly paperwork and cats in trees, haha. #fire2
~4
A: A doctor suggested I try cutting caffeine after noon for my sleep. #sleep3
B: Did it help?
A: A little. I also started reading before bed instead of scrolling. #sleep4
~3
B: Karim's team lost 9 to 1, but they celebrated the one goal like they'd won the World Cup. #soccer2
A: That's the spirit, honestly.
~4
== 2025-03-20
A: I submitted the first three chapters to the writing contest! #novel2
B: Congrats! When do you hear back?
A: In June. I'm trying not to check my email every hour. #novel3
~3
B: We're planning a camping trip to Yosemite this summer, the whole family. #camp1
A: Yosemite! Karim must be so excited.
B: He keeps asking if we'll see bears. I keep hoping we won't. #camp2
~4
A: I've been going to a pottery... no, sorry, a watercolour class at the library on Saturdays. #paint2
B: Haha, watercolour, got it. Is it fun?
A: Very. The teacher is an 80-year-old man who paints birds. He's my hero. #paint3
~4
== 2025-04-27
B: The garden is in the ground! The tomatoes look a bit sad, though. [image: small tomato plants in a raised garden bed] #garden3
A: They'll perk up. You water them every day?
B: Karim does, he's very serious about it. #garden4
~3
A: I adopted a rabbit. Don't laugh. His name is Pancake. #pet1
B: Pancake the rabbit! Lena, that's perfect.
A: He chews every cable in the apartment. #pet2
~4
B: Work has been intense. We had a warehouse fire on Tuesday, twelve hours on scene. #fire3
A: Oh wow, is everyone okay?
B: Everyone got out. I slept for a whole day after. #fire4
~3
A: I'm sleeping better! Seven hours most nights now. #sleep5
B: That's great news.
~3
== 2025-06-14
A: I WON the writing contest! They're publishing the first chapters in an anthology. #novel4
B: LENA! That's incredible!
A: I screamed so loud my neighbour knocked on the wall. #novel5
~3
B: Karim's team won their last game of the season! 3 to 2. [image: a group of kids in green jerseys holding a small trophy] #soccer3
A: From 9-1 to champions!
B: Well, from 9-1 to not last. I'll take it. #soccer4
~4
B: The garden is exploding. I have more zucchini than I know what to do with. #garden5
A: Send some my way! I'll make zucchini bread.
~3
A: Pancake learned his name. He comes running when I call him. #pet3
B: Smarter than my son, haha, don't tell him I said that.
~3
== 2025-08-09
B: We're back from Yosemite! No bears, thank goodness. We hiked to Vernal Fall. [image: a family standing in front of a waterfall] #camp3
A: That looks amazing!
B: Karim caught his first fish in the river and wants to become a fisherman now. #camp4
~4
A: I'm going to a writers' retreat in Scotland next month. Two weeks in a cottage with no wifi. #novel6
B: That sounds like exactly what the book needs.
~3
B: My chief asked me to train the new recruits this fall. #fire5
A: Captain Amir! Well deserved.
~3
A: My watercolour of the lighthouse got into a little library exhibition. [image: a watercolour hanging on a library wall] #paint4
B: Your art is in an exhibition. Do you realise how cool that is?
~4
== 2025-10-19
A: I finished the first draft! 320 pages. The retreat in Scotland helped so much. #novel7
B: A whole novel! How does it feel?
A: Like I ran a marathon with my brain. #novel8
~3
B: I harvested the last tomatoes and made sauce with my mom's recipe. We froze twenty jars. #garden6
A: You're ready for the apocalypse.
~3
B: Training the recruits has been good. One of them reminds me of me at twenty. #fire6
A: Aw, that's sweet.
~3
A: The insomnia is back a bit since the draft, but I know what helps now. #sleep6
B: Reading and no afternoon coffee?
A: Exactly. And Pancake on my lap. #sleep7
~4
""",
    "questions": [
        ("single", "What is Lena's novel about?", ["novel1"]),
        ("single", "What vegetables did Amir plan to grow?", ["garden1"]),
        ("single", "What does Amir do for work?", ["fire1", "fire2"]),
        ("single", "Who is Lena's watercolour teacher?", ["paint3"]),
        ("single", "What kind of pet did Lena adopt?", ["pet1"]),
        ("single", "What did Karim catch on the family trip?", ["camp4"]),
        ("single", "How long is Lena's first draft?", ["novel7"]),
        ("single", "What did Amir do with the last tomatoes?", ["garden6"]),
        ("when", "When did Lena submit chapters to the writing contest?", ["novel2"]),
        ("when", "When did Amir's crew fight the warehouse fire?", ["fire3"]),
        ("when", "When did Lena win the writing contest?", ["novel4"]),
        ("when", "When did Amir's family go on their camping trip?", ["camp3"]),
        ("when", "When did Lena get her rabbit?", ["pet1"]),
        ("when", "When did Lena finish the first draft of her novel?", ["novel7"]),
        ("multihop", "What has Lena tried to help her sleep?", ["sleep3", "sleep4", "sleep7"]),
        ("multihop", "How did Karim's soccer season go?", ["soccer2", "soccer3", "soccer4"]),
        (
            "multihop",
            "What has happened with Lena's watercolour painting?",
            ["paint1", "paint3", "paint4"],
        ),
        (
            "multihop",
            "How has Amir's garden done over the year?",
            ["garden3", "garden5", "garden6"],
        ),
        (
            "multihop",
            "What steps did Lena take toward finishing her book?",
            ["novel2", "novel6", "novel7"],
        ),
        ("multihop", "What has Karim done this year?", ["soccer1", "garden4", "camp4"]),
        ("inference", "Is Amir likely to have a lot of zucchini bread recipes?", ["garden5"]),
        (
            "inference",
            "Would Lena likely enjoy a quiet place without internet?",
            ["novel6", "novel7"],
        ),
        ("inference", "Is Amir an experienced firefighter?", ["fire2", "fire5"]),
        ("inference", "Would Karim probably like a fishing trip?", ["camp4"]),
        ("inference", "Does Lena drink coffee in the evening?", ["sleep3", "sleep7"]),
        ("inference", "Is Lena likely to keep cables out of reach at home?", ["pet2"]),
    ],
}

GRACE_SAM = {
    "user_id": "conv_grace_sam",
    "speakers": ("Grace", "Sam"),
    "script": """
== 2025-03-10
B: Hi Grace! How was your weekend?
A: Lovely, dear. My grandchildren stayed over and we baked scones. Lily is six now and bossier than ever. #grandkids1
B: Haha, sounds like she takes after you.
A: Cheeky! You're not wrong. #grandkids2
~3
B: I got a job at the bike shop downtown. Mostly repairs, which I love. #bikeshop1
A: Oh, that suits you. You always had grease on your hands.
~3
A: Our book club is reading a Scandinavian thriller this month. Too gory for me, but Margaret loves it. #books1
B: What do you usually like to read?
A: Historical novels, mostly. Anything with a good war-time romance. #books2
~4
B: I'm saving up to convert a van and live in it for a year. Travel around, work remotely. #van1
A: My goodness. Is that safe?
B: Lots of people do it! I'm about halfway to my savings goal. #van2
~4
== 2025-04-06
A: I've booked a trip to Ireland in June with my sister. We're visiting where our mother was born, in County Clare. #ireland1
B: Grace, that's wonderful! Your first time there?
A: Yes, at seventy-two. Better late than never. #ireland2
~3
B: I started learning Spanish on an app. Twenty minutes every day. #spanish1
A: ¡Muy bien! I took Spanish in school, but I only remember how to order coffee. #spanish2
~4
A: I'm knitting a blanket for my new great-nephew, due in May. [image: a half-finished pale yellow knitted blanket] #knit1
B: That's so lovely. How long does a blanket take?
A: Months, at my speed. My hands get stiff. #knit2
~3
B: I volunteer at the animal shelter on Saturdays now. I walk the dogs nobody else wants to. #shelter1
A: You have a kind heart, Sam.
~3
== 2025-05-04
B: I entered my first bouldering competition! I came 14th out of 30. #climb1
A: Bouldering is the climbing without ropes? My heart would stop.
B: Yep, just a crash mat. I fell a lot, but it was so fun. #climb2
~3
A: My doctor says I need a hip replacement. I've been putting it off for years. #hip1
B: Oh no, does it hurt a lot?
A: On bad days. The surgery is in September, after Ireland. #hip2
~4
A: The blanket is done and the baby arrived! A little boy named Oscar. [image: a newborn wrapped in a yellow knitted blanket] #knit3
B: Congratulations, Great-Aunt Grace!
~3
B: The van fund is almost there. I found a used van online, a white Ford Transit. #van3
A: Send me pictures when you get it.
~4
== 2025-06-29
A: We're home from Ireland. It was magical. We found my mother's old school in Ennistymon. [image: two older women in front of a small stone schoolhouse] #ireland3
B: Grace, that gives me chills. How did it feel?
A: I cried like a baby. The village still has a pub with her family's name over the door. #ireland4
~4
B: I bought the van! Now the real work starts. [image: an empty white cargo van with the back doors open] #van4
A: What's the plan for the inside?
B: A bed, a little kitchen, and solar panels on the roof. My dad is helping me with the wiring. #van5
~3
B: One of the shelter dogs I walked got adopted! A shy old beagle named Rufus. #shelter2
A: That's the best news. Old dogs deserve a couch too.
~3
A: Lily lost her first tooth while eating a scone at my house. She was thrilled. #grandkids3
B: The tooth fairy owes you a commission.
~4
== 2025-09-21
A: Well, the hip surgery is done. I'm home with a walker and a very attentive daughter. #hip3
B: I'm so glad it went okay! How's the pain?
A: Better than before, believe it or not. Physio twice a week. #hip4
~3
B: I can hold a real conversation in Spanish now! I talked to a customer from Mexico for ten minutes. #spanish3
A: ¡Fantástico! See, I remember two words.
~3
B: The van is almost done. Solar is up, bed is built. I leave in November. #van6
A: Where are you going first?
B: South, to the desert in Arizona, and then down to Mexico to practice my Spanish. #van7
~4
A: Book club picked one of my suggestions for once, a novel about nurses in the Second World War. #books3
B: Right up your alley!
~3
== 2025-11-16
B: I'm on the road! Writing from a campsite in Arizona. The stars are unreal. [image: a white van under a starry desert sky] #van8
A: Oh Sam, that looks like a painting. Are you warm enough at night?
B: It gets cold, but my sleeping bag is rated for freezing. #van9
~3
A: I'm walking without the walker now. Just a cane on long walks. #hip5
B: That's amazing progress!
A: My physio says I can go back to my Tuesday walking group in January. #hip6
~4
B: I miss the shelter dogs, honestly. I've been stopping to pet every dog at the campsites. #shelter3
A: You'll end up with a van dog, mark my words.
~3
A: Lily wants to visit you in your "house on wheels". I told her maybe next summer. #grandkids4
B: She's welcome anytime!
~3
B: I'm working remotely, fixing bike parts for a company that sells refurbished bikes online. #bikeshop2
A: So you can take your job anywhere. Clever.
~4
""",
    "questions": [
        ("single", "What did Grace bake with her grandchildren?", ["grandkids1"]),
        ("single", "Where does Sam work?", ["bikeshop1"]),
        ("single", "What kind of books does Grace like?", ["books2"]),
        ("single", "What is Grace knitting?", ["knit1"]),
        ("single", "What van did Sam find?", ["van3"]),
        ("single", "Where was Grace's mother born?", ["ireland1"]),
        ("single", "What place did Sam finish in the bouldering competition?", ["climb1"]),
        ("single", "Which shelter dog got adopted?", ["shelter2"]),
        ("when", "When did Grace visit Ireland?", ["ireland3"]),
        ("when", "When did Sam start learning Spanish?", ["spanish1"]),
        ("when", "When did Grace have her hip surgery?", ["hip3"]),
        ("when", "When did Sam buy the van?", ["van4"]),
        ("when", "When was Grace's great-nephew born?", ["knit3"]),
        ("when", "When did Sam start living on the road?", ["van8"]),
        ("multihop", "What has Sam done to get the van ready?", ["van4", "van5", "van6"]),
        ("multihop", "How has Grace's hip recovery gone?", ["hip3", "hip4", "hip5", "hip6"]),
        (
            "multihop",
            "What has Grace shared about Lily?",
            ["grandkids1", "grandkids3", "grandkids4"],
        ),
        ("multihop", "How has Sam's Spanish improved?", ["spanish1", "spanish3"]),
        ("multihop", "What did Grace do on the trip to Ireland?", ["ireland3", "ireland4"]),
        ("multihop", "What has Sam done at the animal shelter?", ["shelter1", "shelter2"]),
        ("inference", "Would Sam likely adopt a dog for the road trip?", ["shelter1", "shelter3"]),
        (
            "inference",
            "Is Grace likely to enjoy a historical film about the war?",
            ["books2", "books3"],
        ),
        ("inference", "Does Sam enjoy physical challenges?", ["climb1", "climb2"]),
        ("inference", "Would Grace find climbing without ropes frightening?", ["climb2"]),
        ("inference", "Is Sam handy with tools?", ["bikeshop1", "van5"]),
        ("inference", "Does Grace have Irish roots?", ["ireland1", "ireland4"]),
    ],
}

CONVERSATIONS = (NADIA_TOM, ROSA_DEVIN, LENA_AMIR, GRACE_SAM)
